"""Optimiser construction following TransReID's `make_optimizer`.

The reference gives every parameter whose name contains "bias" the learning rate
base_lr * BIAS_LR_FACTOR (2) and weight decay WEIGHT_DECAY_BIAS, which all published ViT
configurations set equal to WEIGHT_DECAY (1e-4); every other parameter, LayerNorm weights
and position embeddings included, gets base_lr and WEIGHT_DECAY. Frozen parameters (the
BNNeck bias) are left out. The reference builds one group per parameter; two groups
(weights, biases) are the same update and keep the optimiser state small.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 2.0,
    weight_decay_bias: float | None = None,
) -> list[dict[str, Any]]:
    """Split trainable parameters into the weight group and the bias group (in that order)."""
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    weights: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (biases if "bias" in name else weights).append(param)
    groups = [
        {"params": weights, "lr": lr, "weight_decay": weight_decay, "name": "weights"},
        {"params": biases, "lr": lr * bias_lr_factor, "weight_decay": wd_bias, "name": "biases"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    bias_lr_factor: float = 2.0,
    weight_decay_bias: float | None = None,
) -> torch.optim.Optimizer:
    """SGD with momentum (the published recipe) or AdamW, over `param_groups`.

    AdamW keeps the same groups, as the reference does (its AdamW branch passes the
    per-parameter groups, whose lr and weight decay override the defaults).
    """
    groups = param_groups(model, lr, weight_decay, bias_lr_factor, weight_decay_bias)
    key = name.lower()
    if key == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if key == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
