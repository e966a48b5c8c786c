"""Depth of every parameter of a `ReidModel`, for layer-wise learning-rate decay.

Layer 0 is the input embedding, 1..L the backbone's blocks in order, L+1 everything after
them (final norm, BNNeck heads, classifier, SIE, JPM's branch): the BEiT/DINOv2 convention,
with the freshly initialised ReID parts at full rate.
"""

from __future__ import annotations

import re

from reidcli.models.reid_model import ReidModel

_VIT_BLOCK = re.compile(r"^backbone\.blocks\.(\d+)\.")
_VIT_EMBED = ("backbone.cls_token", "backbone.reg_token", "backbone.pos_embed",
              "backbone.patch_embed.")
_SWIN_LAYER = re.compile(r"^backbone\.layers\.(\d+)\.(?:blocks\.(\d+)\.|downsample\.)")
_SWIN_SEMANTIC = re.compile(r"^backbone\.semantic_embed_[wb]\.(\d+)\.")
_RESNET_LAYER = re.compile(r"^backbone\.layer(\d)\.")
_RESNET_STEM = ("backbone.conv1.", "backbone.bn1.")


def layer_ids(model: ReidModel) -> tuple[dict[str, int], int]:
    """({parameter name: layer id}, L). Ids run 0..L+1."""
    family = model.cfg.family
    names = [n for n, _ in model.named_parameters()]
    if model.token_backbone:
        depth = len(model.backbone.blocks)
        return {n: _vit_id(n, depth) for n in names}, depth
    if family == "swin":
        starts, total = [], 0
        for layer in model.backbone.layers:
            starts.append(total)
            total += len(layer.blocks)
        return {n: _swin_id(n, starts, total) for n in names}, total
    depth = 4
    return {n: _resnet_id(n, depth) for n in names}, depth


def _vit_id(name: str, depth: int) -> int:
    if name.startswith(_VIT_EMBED):
        return 0
    if m := _VIT_BLOCK.match(name):
        return int(m.group(1)) + 1
    return depth + 1


def _swin_id(name: str, starts: list[int], total: int) -> int:
    if name.startswith("backbone.patch_embed."):
        return 0
    if m := _SWIN_LAYER.match(name):
        stage = int(m.group(1))
        # Patch merging belongs with the first block it feeds.
        block = int(m.group(2)) if m.group(2) is not None else 0
        return starts[stage] + block + 1
    if m := _SWIN_SEMANTIC.match(name):
        return starts[int(m.group(1)) + 1] + 1
    return total + 1


def _resnet_id(name: str, depth: int) -> int:
    if name.startswith(_RESNET_STEM):
        return 0
    if m := _RESNET_LAYER.match(name):
        return int(m.group(1))
    return depth + 1
