"""Per-iteration schedules, precomputed as arrays (as DINO does).

Every quantity that changes during training (learning rate, weight decay, teacher momentum,
teacher temperatures) is one NumPy array indexed by the global iteration or the epoch. The
engine only indexes them, so a resumed run reads exactly the values the uninterrupted run
would have read.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np


def cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    iters_per_epoch: int,
    warmup_epochs: int = 0,
    warmup_start: float = 0.0,
) -> np.ndarray:
    """Linear warm-up from `warmup_start` to `base`, then a cosine from `base` to `final`.

    One value per iteration, `epochs * iters_per_epoch` values in all, as DINO's
    `utils.cosine_scheduler`: the warm-up includes its endpoint (its last iteration is
    already at `base`, and so is the cosine's first). The warm-up is capped at the run
    length so short runs stay valid.
    """
    total = epochs * iters_per_epoch
    warmup_iters = min(warmup_epochs * iters_per_epoch, total)
    warmup = np.linspace(warmup_start, base, warmup_iters)
    steps = np.arange(total - warmup_iters)
    span = max(len(steps), 1)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * steps / span))
    return np.concatenate((warmup, cosine)).astype(np.float64)


def temperature_schedule(
    warmup_temp: float, temp: float, warmup_epochs: int, epochs: int
) -> np.ndarray:
    """Teacher temperature per epoch: linear from `warmup_temp` to `temp`, then constant.

    A low starting temperature keeps early teacher targets sharp; DINO warns that starting
    above 0.04 can make training unstable.
    """
    warmup_epochs = min(warmup_epochs, epochs)
    return np.concatenate(
        (np.linspace(warmup_temp, temp, warmup_epochs), np.full(epochs - warmup_epochs, temp))
    ).astype(np.float64)


@dataclass(frozen=True)
class Schedules:
    """All schedules of one run. Per-iteration: lr, wd, momentum. Per-epoch: temperatures."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray
    patch_temp: np.ndarray

    @property
    def total_iters(self) -> int:
        return len(self.lr)


def build_schedules(
    *,
    lr: float,
    min_lr: float,
    warmup_epochs: int,
    weight_decay: float,
    weight_decay_end: float,
    momentum_teacher: float,
    epochs: int,
    iters_per_epoch: int,
    warmup_teacher_temp: float,
    teacher_temp: float,
    warmup_teacher_temp_epochs: int,
    warmup_patch_temp: float,
    patch_temp: float,
    warmup_patch_temp_epochs: int,
) -> Schedules:
    """The schedules of docs/methods.md (DINO): lr warm-up + cosine, wd cosine, momentum
    cosine to 1."""
    return Schedules(
        lr=cosine_schedule(lr, min_lr, epochs, iters_per_epoch, warmup_epochs),
        wd=cosine_schedule(weight_decay, weight_decay_end, epochs, iters_per_epoch),
        momentum=cosine_schedule(momentum_teacher, 1.0, epochs, iters_per_epoch),
        teacher_temp=temperature_schedule(
            warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, epochs
        ),
        patch_temp=temperature_schedule(
            warmup_patch_temp, patch_temp, warmup_patch_temp_epochs, epochs
        ),
    )


def schedules_for(cfg: Any, iters_per_epoch: int) -> Schedules:
    """A run's schedules: every setting of `build_schedules` is the configuration's field of
    the same name, but the peak lr, given for a batch of 256 and scaled linearly with the
    batch size (as DINO)."""
    names = inspect.signature(build_schedules).parameters.keys() - {"lr", "iters_per_epoch"}
    return build_schedules(lr=cfg.lr * cfg.batch_size / 256, iters_per_epoch=iters_per_epoch,
                           **{name: getattr(cfg, name) for name in names})
