"""Self-distillation losses: DINO (image level), iBOT patch loss (MIM) and PASS part losses.

Conventions shared by all three: logits are lists with one (B, K) tensor per view (or
(B, N, K) per view for patches); teacher view i is the same augmented image as student
view i, which is how "identical views" are recognised and skipped. Teacher targets are
centred and sharpened with the temperature the caller passes (it follows a schedule);
centres are EMA buffers, averaged over all processes under DDP so every rank keeps the same
centre.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class LossTerms(NamedTuple):
    loss: torch.Tensor
    teacher_probs: torch.Tensor
    """The sharpened teacher distribution over all teacher views, detached (monitoring)."""


def _world_sum(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        return t, dist.get_world_size()
    return t, 1


def pair_count(n_teacher: int, n_student: int) -> int:
    """How many (teacher view, student view) pairs a DINO loss averages over."""
    return n_teacher * n_student - min(n_teacher, n_student)


class DINOLoss(nn.Module):
    """Mean over view pairs i != v of mean_b sum_k -softmax((t_i-c)/tau_t) log_softmax(s_v/tau_s).

    The centre is updated after the loss is computed, with the teacher logits of this
    step: c <- m c + (1 - m) mean_batch(t), the mean taken over every process.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self, student: list[torch.Tensor], teacher: list[torch.Tensor], teacher_temp: float
    ) -> LossTerms:
        if not student or not teacher:
            raise ValueError("DINO loss needs at least one student and one teacher view")
        with torch.no_grad():
            t_all = torch.cat(teacher).float()
            probs = F.softmax((t_all - self.center) / teacher_temp, dim=-1)
            t_probs = probs.chunk(len(teacher))
        log_s = [F.log_softmax(s.float() / self.student_temp, dim=-1) for s in student]
        total = student[0].new_zeros((), dtype=torch.float32)
        terms = 0
        for i, q in enumerate(t_probs):
            for v, ls in enumerate(log_s):
                if v == i:
                    continue
                total = total + torch.sum(-q * ls, dim=-1).mean()
                terms += 1
        if terms == 0:
            raise ValueError("DINO loss has no pair of distinct views")
        self.update_center(t_all)
        return LossTerms(total / terms, probs)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_sum, world = _world_sum(teacher_logits.sum(dim=0, keepdim=True))
        batch_center = batch_sum / (teacher_logits.shape[0] * world)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


class PatchLoss(nn.Module):
    """iBOT masked-image-modelling loss on patch tokens.

    For each global view the student saw masked and the teacher unmasked, cross-entropy per
    masked token, summed over the image's masked tokens and divided by their count (so
    every image weighs the same whatever its mask ratio), averaged over the images of the
    batch (an unmasked image contributes zero, as in iBOT) and over the views. The patch
    centre is a separate EMA over the teacher's token-averaged logits.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, 1, out_dim))

    def forward(
        self,
        student: list[torch.Tensor],
        teacher: list[torch.Tensor],
        masks: list[torch.Tensor],
        teacher_temp: float,
    ) -> LossTerms:
        if not (len(student) == len(teacher) == len(masks)) or not student:
            raise ValueError("patch loss needs one student, teacher and mask tensor per view")
        with torch.no_grad():
            t_all = torch.cat(teacher).float()
            probs = F.softmax((t_all - self.center) / teacher_temp, dim=-1)
            t_probs = probs.chunk(len(teacher))
        total = student[0].new_zeros((), dtype=torch.float32)
        for s, q, m in zip(student, t_probs, masks, strict=True):
            ce = torch.sum(-q * F.log_softmax(s.float() / self.student_temp, dim=-1), dim=-1)
            m = m.flatten(1).to(ce.dtype)
            per_image = (ce * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)
            total = total + per_image.mean()
        self.update_center(t_all)
        return LossTerms(total / len(student), probs)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_sum, world = _world_sum(teacher_logits.mean(dim=1).sum(dim=0, keepdim=True))
        batch_center = (batch_sum / (teacher_logits.shape[0] * world)).unsqueeze(1)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


class PartLoss(nn.Module):
    """PASS: one DINO loss (own centre) for [CLS] and one for each [PART] token.

    [CLS] is plain DINO over all views. [PART]_k compares the teacher's global [PART]_k
    outputs only with the student's global [PART]_k outputs and the [PART]_k outputs of the
    local crops taken from region k; parts never meet each other. As in PASS's reference
    code, the total is the mean over every (teacher view, student view) pair term of all
    L + 1 losses, so each loss weighs by its pair count: with 2 global views and J local
    crops per region, [CLS] has 2 (2 + LJ) - 2 pairs and each part 2 (2 + J) - 2 (L = J = 3:
    20/44 for [CLS], 8/44 per part).
    """

    def __init__(
        self, out_dim: int, num_parts: int, student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        self.cls = DINOLoss(out_dim, student_temp, center_momentum)
        self.parts = nn.ModuleList(
            DINOLoss(out_dim, student_temp, center_momentum) for _ in range(num_parts)
        )

    def forward(
        self,
        cls_student: list[torch.Tensor],
        cls_teacher: list[torch.Tensor],
        part_student: list[list[torch.Tensor]],
        part_teacher: list[list[torch.Tensor]],
        teacher_temp: float,
    ) -> tuple[torch.Tensor, LossTerms, list[LossTerms]]:
        if len(part_student) != len(self.parts) or len(part_teacher) != len(self.parts):
            raise ValueError(f"expected views for {len(self.parts)} parts")
        cls_terms = self.cls(cls_student, cls_teacher, teacher_temp)
        part_terms = [
            loss(s, t, teacher_temp)
            for loss, s, t in zip(self.parts, part_student, part_teacher, strict=True)
        ]
        counts = [pair_count(len(cls_teacher), len(cls_student))]
        counts += [pair_count(len(t), len(s)) for s, t in zip(part_student, part_teacher,
                                                              strict=True)]
        losses = [cls_terms.loss, *(p.loss for p in part_terms)]
        total = sum(n * loss for n, loss in zip(counts, losses, strict=True)) / sum(counts)
        return total, cls_terms, part_terms

