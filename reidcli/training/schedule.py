"""Learning-rate schedule: timm's CosineLRScheduler, stepped exactly as TransReID steps it.

TransReID (`solver/scheduler_factory.py`, "type 2") builds
    CosineLRScheduler(t_initial=MAX_EPOCHS, lr_min=0.002*BASE_LR,
                      warmup_lr_init=0.01*BASE_LR, warmup_t=WARMUP_EPOCHS, cycle_limit=1,
                      t_in_epochs=True)
with timm's default `warmup_prefix=False`, and its training loop calls
`scheduler.step(epoch)` at the START of every epoch with epoch = 1..MAX_EPOCHS. So epoch
e trains at lr(e):
    e < warmup:  0.01*lr + e * (lr - 0.01*lr) / warmup        (epoch 0 is never trained)
    e >= warmup: lr_min + (lr - lr_min) * (1 + cos(pi * e / MAX_EPOCHS)) / 2
The cosine runs over the whole t_initial (warm-up epochs are not a prefix), and the last
epoch trains at exactly lr_min. With lr 0.008, 120 epochs and 5 warm-up epochs (the
TransReID default SOLVER.WARMUP_EPOCHS, which no published config overrides) epoch 20
trains at 7.4652e-3. `lr_min` and `warmup_lr_init` are absolute, so the x2 bias group
warms up from the same 0.01*lr and ends at the same floor as the weights.

The BoT recipe's step schedule (`kind="step"`) is timm's MultiStepLRScheduler with the same
warm-up and stepping: after warm-up, lr * gamma**k where k counts the milestones reached.
timm compares `epoch + 1` with the milestones, so with milestones (40, 70) epochs 39..68 train
at lr * 0.1 and epochs 69.. at lr * 0.01 (1-based epochs; BoT's own loop, stepping a 0-based
counter, decays one epoch later).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler
from timm.scheduler.scheduler import Scheduler

WARMUP_FACTOR = 0.01
MIN_LR_FACTOR = 0.002


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    epochs: int,
    warmup_epochs: int,
    warmup_factor: float = WARMUP_FACTOR,
    min_lr_factor: float = MIN_LR_FACTOR,
    kind: str = "cosine",
    steps: Sequence[int] = (40, 70),
    gamma: float = 0.1,
) -> Scheduler:
    """The reference scheduler; call `scheduler.step(epoch)` before training epoch (1-based)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup epochs must be >= 0, got {warmup_epochs}")
    if kind == "step":
        return MultiStepLRScheduler(
            optimizer,
            decay_t=list(steps),
            decay_rate=gamma,
            warmup_t=warmup_epochs,
            warmup_lr_init=warmup_factor * base_lr,
            warmup_prefix=False,
            t_in_epochs=True,
        )
    if kind != "cosine":
        raise ValueError(f"unknown schedule {kind!r}; choose cosine or step")
    return CosineLRScheduler(
        optimizer,
        t_initial=epochs,
        lr_min=min_lr_factor * base_lr,
        warmup_t=warmup_epochs,
        warmup_lr_init=warmup_factor * base_lr,
        warmup_prefix=False,
        cycle_limit=1,
        t_in_epochs=True,
    )


def lr_at_epoch(
    epoch: int,
    base_lr: float,
    epochs: int,
    warmup_epochs: int,
    warmup_factor: float = WARMUP_FACTOR,
    min_lr_factor: float = MIN_LR_FACTOR,
) -> float:
    """The learning rate (weight group) that training epoch `epoch` (1-based) uses."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    sched = build_scheduler(optimizer, base_lr, epochs, warmup_epochs, warmup_factor, min_lr_factor)
    sched.step(epoch)
    return float(optimizer.param_groups[0]["lr"])
