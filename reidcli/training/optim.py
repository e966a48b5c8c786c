"""Optimiser construction following TransReID's `make_optimizer`.

The reference gives every parameter whose name contains "bias" the learning rate
base_lr * BIAS_LR_FACTOR (2) and weight decay WEIGHT_DECAY_BIAS, which all published ViT
configurations set equal to WEIGHT_DECAY (1e-4); every other parameter, LayerNorm weights
and position embeddings included, gets base_lr and WEIGHT_DECAY. Frozen parameters (the
BNNeck bias, a frozen backbone) are left out. The reference builds one group per parameter;
two groups (weights, biases) are the same update and keep the optimiser state small.

With layer-wise decay (`lr_decay`, for fine-tuning foundation models such as DINOv2) each
(layer, weights/biases) pair is a group whose rate is further scaled by
lr_decay ** (L + 1 - layer) (`reidcli.models.layers`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw")


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 2.0,
    weight_decay_bias: float | None = None,
    lr_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Split trainable parameters into the weight group and the bias group (in that order),
    per layer when `lr_decay` is given (then `model` must be a ReidModel)."""
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    layers: dict[str, int] = {}
    top = 0
    if lr_decay is not None:
        from reidcli.models import unwrap
        from reidcli.models.layers import layer_ids

        layers, depth = layer_ids(unwrap(model))
        top = depth + 1
    grouped: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (layers.get(name.removeprefix("module."), top), "bias" in name)
        grouped.setdefault(key, []).append(param)
    groups = []
    for (layer, is_bias), params in sorted(grouped.items()):
        scale = 1.0 if lr_decay is None else lr_decay ** (top - layer)
        name = "biases" if is_bias else "weights"
        groups.append({
            "params": params,
            "lr": lr * scale * (bias_lr_factor if is_bias else 1.0),
            "weight_decay": wd_bias if is_bias else weight_decay,
            "name": name if lr_decay is None else f"layer{layer}.{name}",
        })
    return groups


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    bias_lr_factor: float = 2.0,
    weight_decay_bias: float | None = None,
    lr_decay: float | None = None,
) -> torch.optim.Optimizer:
    """SGD with momentum (the published recipe), Adam (BoT, DINOv2 linear probe: L2 weight
    decay) or AdamW, over `param_groups`.

    AdamW keeps the same groups, as the reference does (its AdamW branch passes the
    per-parameter groups, whose lr and weight decay override the defaults).
    """
    groups = param_groups(model, lr, weight_decay, bias_lr_factor, weight_decay_bias, lr_decay)
    key = name.lower()
    if key == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if key == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
