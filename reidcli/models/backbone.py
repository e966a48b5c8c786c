"""Backbone construction: timm's VisionTransformer with our patch embedding and token layout."""

from __future__ import annotations

from functools import partial

import timm
from timm.models.vision_transformer import VisionTransformer

from reidcli.models.config import BACKBONES, ModelConfig
from reidcli.models.stems import IcsPatchEmbed, OverlapPatchEmbed


def build_backbone(cfg: ModelConfig) -> VisionTransformer:
    """Build the ViT for `cfg` with random weights (pretrained weights come from `load_pretrained`).

    PASS part tokens are timm register tokens with `no_embed_class=True`: the position table
    then covers patches only, and each prefix token (CLS, PART_k) is a free parameter, which is
    the same function as PASS's token + own position vector (the two sum to one constant).
    """
    spec = BACKBONES[cfg.backbone]
    embed = IcsPatchEmbed if cfg.stem == "ics" else OverlapPatchEmbed
    kwargs = dict(spec.overrides)
    kwargs.update(
        img_size=cfg.img_size,
        patch_size=16,
        num_classes=0,
        drop_path_rate=cfg.drop_path,
        embed_layer=partial(embed, stride=cfg.stride),
        reg_tokens=cfg.part_tokens,
        no_embed_class=cfg.part_tokens > 0,
        class_token=True,
    )
    model = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"{spec.timm_name} is not a timm VisionTransformer")
    if model.patch_embed.grid_size != cfg.grid:
        raise AssertionError(f"grid {model.patch_embed.grid_size} != expected {cfg.grid}")
    return model
