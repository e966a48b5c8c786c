"""`--device` and `--amp`: one resolution for every stage, and the autocast context."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from reidcli.errors import ReidError
from reidcli.utils.recipes import setting

AMP_MODES = ("auto", "bf16", "fp16", "off")


class UnknownDevice(ReidError):
    """A `--device` string torch cannot parse (bad usage, not a failure)."""


def _parse(requested: str | torch.device | None) -> torch.device:
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(requested)
    except RuntimeError as err:
        raise UnknownDevice(f"unknown device {str(requested)!r}: {err}") from None


def device_type(requested: str | torch.device | None) -> str:
    """`cpu` or `cuda` for a `--device` value (`auto` = CUDA when present), without touching
    the GPU: the process-group backend is chosen from it before any device is set."""
    return _parse(requested).type


def resolve_device(requested: str | torch.device | None = "auto",
                   local_rank: int = 0) -> torch.device:
    """`auto` (or None) picks CUDA when present, else the CPU. A CUDA device without an
    index takes GPU `local_rank` (under torchrun each rank its own) and becomes current."""
    device = _parse(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ReidError(f"--device {requested}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def amp_setting() -> Any:
    """The `amp` field of a training stage's configuration ([train] table), declared once:
    auto = fp16 with GradScaler on CUDA, off on CPU."""
    return setting("auto", "train")


def amp_problems(mode: str) -> list[str]:
    """A stage configuration's complaint about its `amp` value (none when it is valid)."""
    if mode in AMP_MODES:
        return []
    return [f"amp must be one of {', '.join(AMP_MODES)}, got {mode!r}"]


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """`auto`: fp16 on CUDA (what the reference code uses), off elsewhere."""
    if mode not in AMP_MODES:
        raise ReidError(f"--amp must be one of {', '.join(AMP_MODES)}, got {mode!r}")
    if mode == "auto":
        return torch.float16 if device.type == "cuda" else None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[None]:
    """Mixed precision in `dtype` on `device`, or nothing when AMP is off."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
