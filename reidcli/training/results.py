"""What fine-tuning reports to its callers: per-step and per-epoch hook payloads, the hooks,
and the result of a run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class BatchInfo:
    """Passed to `Hooks.on_batch` after every optimiser step."""

    epoch: int
    step: int
    indices: torch.Tensor  # dataset indices this rank trained on
    loss: float
    model: nn.Module  # unwrapped (no DDP)
    rank: int


@dataclass
class EpochInfo:
    """Passed to `Hooks.on_epoch_end` after the epoch's checkpoint is written."""

    epoch: int
    record: dict[str, Any]
    model: nn.Module
    rank: int


@dataclass
class Hooks:
    """Optional callbacks for library users (and tests); an exception in one stops training
    after the last written checkpoint, like any interruption."""

    on_batch: Callable[[BatchInfo], None] | None = None
    on_epoch_end: Callable[[EpochInfo], None] | None = None


@dataclass
class RunResult:
    run_dir: Path
    epochs: int
    start_epoch: int
    best_epoch: int | None = None
    best_map: float | None = None
    final: dict[str, float] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    evaluations: dict[str, dict[str, float]] = field(default_factory=dict)
    """The last evaluation's scores per evaluation dataset (`final` is the first one's)."""
