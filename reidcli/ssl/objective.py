"""The training objective of each method, assembled from the losses in `losses.py`."""

from __future__ import annotations

import torch
from torch import nn

from reidcli.ssl.losses import DINOLoss, PartLoss, PatchLoss
from reidcli.ssl.network import NetOutput


class Objective(nn.Module):
    """dino: DINO on [CLS]. dino-mim: lambda_cls * DINO + lambda_mim * iBOT patch loss.
    pass: the [CLS] and per-[PART] DINO losses, weighted by their pair counts (PartLoss).
    Centres are this module's buffers, so its state dict is what a checkpoint must keep."""

    def __init__(
        self,
        method: str,
        out_dim: int,
        *,
        parts: int = 0,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        lambda_cls: float = 1.0,
        lambda_mim: float = 1.0,
    ) -> None:
        super().__init__()
        self.method = method
        self.lambda_cls, self.lambda_mim = lambda_cls, lambda_mim
        if method == "pass":
            self.loss: nn.Module = PartLoss(out_dim, parts, student_temp, center_momentum)
        else:
            self.loss = DINOLoss(out_dim, student_temp, center_momentum)
        self.patch: PatchLoss | None = None
        if method == "dino-mim":
            self.patch = PatchLoss(out_dim, student_temp, center_momentum)

    @property
    def cls_center(self) -> torch.Tensor:
        return self.loss.cls.center if self.method == "pass" else self.loss.center

    def forward(
        self,
        student: NetOutput,
        teacher: NetOutput,
        masks: list[torch.Tensor],
        teacher_temp: float,
        patch_temp: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total loss, named terms (detached), teacher [CLS] distribution)."""
        if self.method == "pass":
            total, cls, parts = self.loss(
                student.cls, teacher.cls, student.parts, teacher.parts, teacher_temp
            )
            terms = {"cls": cls.loss.detach()}
            terms |= {f"part{k}": p.loss.detach() for k, p in enumerate(parts)}
            return total, terms, cls.teacher_probs
        cls = self.loss(student.cls, teacher.cls, teacher_temp)
        if self.patch is None:
            return cls.loss, {"cls": cls.loss.detach()}, cls.teacher_probs
        mim = self.patch(student.patches, teacher.patches, masks, patch_temp)
        total = self.lambda_cls * cls.loss + self.lambda_mim * mim.loss
        return total, {"cls": cls.loss.detach(), "mim": mim.loss.detach()}, cls.teacher_probs
