"""Exponential moving average of the student's weights into the teacher."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter.

    Only parameters are averaged: buffers (BatchNorm statistics of an ICS stem) are the
    teacher's own, updated by its forward passes as in DINO. Parameters are matched by
    name so a frozen or missing student parameter is an error rather than a silent skip.
    """
    student_params = dict(student.named_parameters())
    teacher_params = dict(teacher.named_parameters())
    if student_params.keys() != teacher_params.keys():
        missing = sorted(student_params.keys() ^ teacher_params.keys())[:5]
        raise ValueError(f"teacher and student parameters differ: {missing}")
    names = list(student_params)
    t = [teacher_params[n].data for n in names]
    s = [student_params[n].data.to(teacher_params[n].dtype) for n in names]
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, s, alpha=1.0 - momentum)
