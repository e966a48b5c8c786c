"""Backbone construction: timm's VisionTransformer with our patch embedding and token layout.

Non-token backbones (Swin, ResNet) are built by their own modules; `build_backbone` is the one
entry point for every family.
"""

from __future__ import annotations

from functools import partial

import timm
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from reidcli.models.config import BACKBONES, ModelConfig
from reidcli.models.stems import IcsPatchEmbed, OverlapPatchEmbed


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The backbone of `cfg`, randomly initialised (weights come from `load_pretrained`)."""
    family = cfg.family
    if family == "swin":
        from reidcli.models.swin import build_swin

        return build_swin(cfg)
    if family == "resnet":
        from reidcli.models.resnet import build_resnet

        return build_resnet(cfg)
    return build_vit(cfg)


def build_vit(cfg: ModelConfig) -> VisionTransformer:
    """The ViT (ViT/DeiT patch 16, DINOv2 patch 14) of `cfg`.

    PASS part tokens are timm register tokens with `no_embed_class=True`: the position table
    then covers patches only, and each prefix token (CLS, PART_k) is a free parameter, which is
    the same function as PASS's token + own position vector (the two sum to one constant).
    DINOv2's own registers (`-reg` backbones) use the same timm mechanism and come from the spec.
    """
    spec = BACKBONES[cfg.backbone]
    embed = IcsPatchEmbed if cfg.stem == "ics" else OverlapPatchEmbed
    kwargs = dict(spec.overrides)
    kwargs.update(
        img_size=cfg.img_size,
        patch_size=spec.patch_size,
        num_classes=0,
        drop_path_rate=cfg.drop_path,
        embed_layer=partial(embed, stride=cfg.stride),
        class_token=True,
    )
    if not spec.registers:
        kwargs.update(reg_tokens=cfg.part_tokens, no_embed_class=cfg.part_tokens > 0)
    model = timm.create_model(spec.timm_name, pretrained=False, **kwargs)
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"{spec.timm_name} is not a timm VisionTransformer")
    if model.patch_embed.grid_size != cfg.grid:
        raise AssertionError(f"grid {model.patch_embed.grid_size} != expected {cfg.grid}")
    return model
