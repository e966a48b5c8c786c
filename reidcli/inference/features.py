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
        with autocast(self.device, self.amp):
            out = test_features(self.model, x, cam, view, self.flip)
        return out.cpu()


def test_features(
    model: nn.Module,
    x: torch.Tensor,
    camids: torch.Tensor | None = None,
    viewids: torch.Tensor | None = None,
    flip: bool = False,
) -> torch.Tensor:
    """The eval-mode model's (B, D) float32 feature, optionally flip-averaged.

    Pure tensor code (no device moves, no host syncs), so the exported ONNX graph
    (`reidcli.deploy`) computes exactly what `reid extract` computes.
    """
    if flip:
        x = torch.cat([x, x.flip(-1)])
        camids = None if camids is None else torch.cat([camids, camids])
        viewids = None if viewids is None else torch.cat([viewids, viewids])
    out = model(x, camids, viewids).float()
    if flip:
        b = out.shape[0] // 2
        out = (out[:b] + out[b:]) / 2
    return out
