"""DDP under `torchrun`: process-group set-up from the environment and small collectives.

`torchrun --nproc_per_node N` exports RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; with WORLD_SIZE > 1 we join the group with NCCL when the ranks use GPUs and
gloo otherwise. Without those variables everything degrades to a single process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from reidcli.errors import ReidError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's variables; (0, 1, 0) when absent."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ReidError(f"malformed torchrun environment: {err}") from None
    return rank, world, local


def init_distributed(device_type: str) -> DistContext:
    """Join the process group if launched by torchrun with more than one process."""
    rank, world, local = env_world()
    if world <= 1:
        return DistContext()
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local, initialized_here=False)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    log.info("DDP: rank %d of %d (%s)", rank, world, backend)
    return DistContext(rank, world, local, initialized_here=True)


def shutdown(ctx: DistContext) -> None:
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean over ranks (a copy; the input is untouched). Identity on one process."""
    if not ctx.enabled:
        return value.detach().clone()
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world_size


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def sync_batchnorm(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """BatchNorm layers made SyncBatchNorm when training on several CUDA processes.

    DINO and TransReID-SSL convert them (the ICS stem's and ResNet's BatchNorms), so the
    statistics are those of the global batch. torch's SyncBatchNorm runs on GPUs only
    (its training forward raises on CPU tensors), so with CPU processes (gloo) each rank
    keeps its own statistics and a one-line warning says so. Conversion keeps the
    parameters (same tensors) and buffers, and state-dict keys do not change.
    """
    if not ctx.enabled or not has_batchnorm(model):
        return model
    if device.type != "cuda":
        if ctx.is_main:
            log.warning("SyncBatchNorm needs CUDA: with %d CPU processes each keeps its own "
                        "BatchNorm statistics", ctx.world_size)
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)
