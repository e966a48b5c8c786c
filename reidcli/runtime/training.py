"""What every training loop does the same way: fine-tuning (`reidcli.training`, its
`--unsupervised` variant included) and pre-training (`reidcli.ssl`) build and step with these.

- `wrap_ddp`: the module the loop calls, DistributedDataParallel under torchrun;
- `make_scaler`: the GradScaler, active for fp16 only (bf16 and fp32 need no loss scaling);
- `backward_step`: zero_grad, scaled backward, (unscale + gradient surgery), step, update;
- `NonFiniteGuard`: the one abort on a NaN/inf loss, with one message for every stage;
- `EpochMeter`: one epoch's running sums, images, time and time blocked on the loader;
- `peak_memory_mb`: the peak memory of this process on its device.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from reidcli.errors import TrainingError
from reidcli.runtime.distributed import DistContext

T = TypeVar("T")


def wrap_ddp(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """`module` under DDP when several processes train (one GPU each, or CPU processes
    over gloo); `module` itself on one process."""
    if not ctx.enabled:
        return module
    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )


def make_scaler(amp: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler that scales only fp16 losses; disabled it passes everything through,
    and its (empty) state dict still has a place in trainer.pt."""
    return torch.amp.GradScaler(device.type, enabled=amp == torch.float16)


def backward_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    adjust: Callable[[], None] | None = None,
) -> None:
    """One optimiser step on `loss` through `scaler`. `adjust` (clipping, dropping some
    gradients) runs on the unscaled gradients, between backward and step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if adjust is not None:
        scaler.unscale_(optimizer)
        adjust()
    scaler.step(optimizer)
    scaler.update()


@dataclass(frozen=True)
class NonFiniteGuard:
    """Stops a run at a NaN/inf loss, before the step that would spread it into the weights,
    saying what is still saved and what to change. `hint`: the stage's own extra advice."""

    run_root: Path
    hint: str = ""

    def check(self, loss: float, where: str, saved: str | None,
              terms: dict[str, float] | None = None) -> None:
        """`where`: e.g. "epoch 2, step 5"; `saved`: the checkpoint a `--resume` continues
        from (None: nothing was saved yet); `terms`: the loss's parts, to see which one."""
        if math.isfinite(loss):
            return
        parts = "; " + ", ".join(f"{k} {v}" for k, v in terms.items()) if terms else ""
        kept = (f"{saved} in {self.run_root} is intact (--resume continues from it)"
                if saved else "nothing of this run was saved yet")
        hint = f", {self.hint}" if self.hint else ""
        raise TrainingError(
            f"non-finite loss ({loss}{parts}) at {where}; {kept}. Try a lower --lr{hint}, "
            "--amp bf16 or --amp off, or check the input images."
        )


class EpochMeter:
    """One epoch's running sums of per-step values (means = sum / steps), the images of the
    global batch, wall time, and the time blocked on the loader (each step ends in a host
    sync, the loss values, so the rest of the epoch is the device's work).

    `carry` continues an epoch interrupted in its middle from `state()` (a checkpoint's)."""

    def __init__(self, world_size: int, keys: Iterable[str] = (),
                 carry: dict[str, Any] | None = None) -> None:
        self.world_size = world_size
        self.sums: dict[str, float] = dict.fromkeys(keys, 0.0)
        self.steps = self.images = 0
        self.waited = 0.0
        self.start = time.perf_counter()
        if carry is not None:
            self.sums = dict(carry["sums"])
            self.steps, self.images = int(carry["steps"]), int(carry["images"])
            self.start -= float(carry["seconds"])

    def batches(self, loader: Iterable[T]) -> Iterator[T]:
        """`loader`'s batches, timing how long each is waited for."""
        ready = time.perf_counter()
        for batch in loader:
            self.waited += time.perf_counter() - ready
            yield batch
            ready = time.perf_counter()

    def add(self, values: dict[str, float], batch_size: int) -> None:
        """One step: its values and this process's batch size."""
        self.steps += 1
        self.images += batch_size * self.world_size
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def mean(self, key: str) -> float:
        return self.sums[key] / max(self.steps, 1)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def images_per_s(self, elapsed: float | None = None) -> float:
        return self.images / max(self.elapsed() if elapsed is None else elapsed, 1e-9)

    def state(self, elapsed: float | None = None) -> dict[str, Any]:
        """What `carry` takes back."""
        return {"sums": dict(self.sums), "steps": self.steps, "images": self.images,
                "seconds": self.elapsed() if elapsed is None else elapsed}


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated CUDA memory on a GPU; the process's peak resident size elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
