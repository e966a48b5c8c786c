"""SOLIDER's Swin: timm's Swin Transformer with the semantic controller of SOLIDER-REID.

The controller turns lambda (`semantic_weight`) into the vector [lambda, 1 - lambda] and, per
stage transition, two linear maps of it: a scale `softplus(semantic_embed_w(v))` and a bias
`semantic_embed_b(v)` applied channel-wise to the downsampled features before the next
stage's blocks. SOLIDER's code also builds a controller after the last stage, but its output
is discarded there (the descriptor is taken from the stage output before it), so it never
affects the feature; it is not built here and its checkpoint keys are reported as dropped.

Index k of `semantic_embed_w/b` follows SOLIDER's numbering: SOLIDER's stage k ends with
patch merging, timm's stage k+1 starts with it, so controller k acts between timm stage
k+1's `downsample` and its `blocks`.

The descriptor is the final LayerNorm's output averaged over the feature map, as in
SOLIDER-REID (timm's `forward_features` output is NHWC).
"""

from __future__ import annotations

import math

import timm
import torch
from timm.models.swin_transformer import SwinTransformer
from torch import nn
from torch.nn import functional as F

from reidcli.models.config import BACKBONES, ModelConfig

# softplus(IDENTITY_SCALE) == 1: a fresh controller leaves the features unchanged.
IDENTITY_SCALE = math.log(math.e - 1.0)


class SemanticSwin(nn.Module):
    """Keys: timm's Swin names (`patch_embed.*`, `layers.{i}.*`, `norm.*`) plus
    `semantic_embed_w.{k}` / `semantic_embed_b.{k}` (k = 0..stages-2)."""

    def __init__(self, swin: SwinTransformer, semantic_weight: float) -> None:
        super().__init__()
        # Adopt timm's modules (not the classifier head) so the keys stay timm's.
        self.patch_embed = swin.patch_embed
        self.layers = swin.layers
        self.norm = swin.norm
        self.num_features = int(swin.num_features)
        self.semantic_weight = float(semantic_weight)
        # A stage's `dim` is its input width; its blocks run at the width after patch merging.
        dims = [int(layer.blocks[0].norm1.normalized_shape[0]) for layer in swin.layers]
        self.semantic_embed_w = nn.ModuleList(nn.Linear(2, d) for d in dims[1:])
        self.semantic_embed_b = nn.ModuleList(nn.Linear(2, d) for d in dims[1:])
        for lin in self.semantic_embed_w:
            nn.init.zeros_(lin.weight)
            nn.init.constant_(lin.bias, IDENTITY_SCALE)
        for lin in self.semantic_embed_b:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def condition(self, like: torch.Tensor) -> torch.Tensor:
        lam = self.semantic_weight
        return like.new_tensor([lam, 1.0 - lam])

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> final-norm features, NHWC."""
        x = self.patch_embed(x)
        cond = self.condition(x)
        for i, layer in enumerate(self.layers):
            x = layer.downsample(x)
            if i > 0:
                scale = F.softplus(self.semantic_embed_w[i - 1](cond))
                x = x * scale + self.semantic_embed_b[i - 1](cond)
            x = layer.blocks(x)
        return self.norm(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled descriptor (B, C)."""
        return self.feature_map(x).mean(dim=(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def build_swin(cfg: ModelConfig) -> SemanticSwin:
    """timm Swin at the config's input size; the window is used at every stage (padded where the
    feature map is not a multiple of it), as SOLIDER does, rather than shrunk to the map."""
    spec = BACKBONES[cfg.backbone]
    kwargs = dict(spec.overrides)
    kwargs.update(
        img_size=cfg.img_size,
        window_size=cfg.window_size,
        always_partition=True,
        num_classes=0,
        drop_path_rate=cfg.drop_path,
    )
    swin = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    if not isinstance(swin, SwinTransformer):
        raise TypeError(f"{spec.timm_name} is not a timm SwinTransformer")
    assert cfg.semantic_weight is not None
    return SemanticSwin(swin, cfg.semantic_weight)
