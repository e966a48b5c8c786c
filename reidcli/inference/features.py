"""Batched feature computation shared by `reid extract` and evaluation during training."""

from __future__ import annotations

import torch
from torch import nn

from reidcli.runtime.device import autocast


class FeatureExtractor:
    """`model` in eval mode on `device`, optionally with flip test-time augmentation.

    With `flip`, the feature is the mean of the image's and its mirror's features (as
    fast-reid and torchreid do); both go through the model in one batch of 2B so the
    throughput cost is one larger forward, not two launches.
    """

    def __init__(
        self, model: nn.Module, device: torch.device, amp: torch.dtype | None = None,
        flip: bool = False,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.amp = amp
        self.flip = flip

    @torch.no_grad()
    def __call__(
        self,
        images: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D) float32 features on the CPU (not normalised)."""
        x = images.to(self.device, non_blocking=True)
        cam = None if camids is None else camids.to(self.device, non_blocking=True)
        view = None if viewids is None else viewids.to(self.device, non_blocking=True)
        if self.flip:
            x = torch.cat([x, x.flip(-1)])
            cam = None if cam is None else torch.cat([cam, cam])
            view = None if view is None else torch.cat([view, view])
        with autocast(self.device, self.amp):
            out = self.model(x, cam, view)
        out = out.float()
        if self.flip:
            b = images.shape[0]
            out = (out[:b] + out[b:]) / 2
        return out.cpu()
