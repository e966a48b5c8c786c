"""Reading `.safetensors` files so that a damaged one is a one-line error naming it.

safetensors validates the header (its size, every tensor's dtype, shape and offsets, and that
the data covers the file) before any tensor is read, and reports a violation as
`SafetensorError`; here that, an I/O failure and a metadata `config` that is not JSON become
a `CheckpointError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from reidcli.errors import CheckpointError


def _damaged(path: str | os.PathLike[str], err: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable safetensors file ({err}): it is damaged or truncated; save "
        "or copy it again"
    )


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors on the CPU, metadata) of a safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as err:
        raise _damaged(path, err) from None
    return state, meta


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a safetensors file, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise _damaged(path, err) from None


def stored_config(meta: dict[str, str], path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The model configuration reidcli stores in the metadata (`config`), if any."""
    if "config" not in meta:
        return None
    try:
        config = json.loads(meta["config"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{Path(path)}: the `config` metadata is not valid JSON ({err})") \
            from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{Path(path)}: the `config` metadata is not a JSON object")
    return config
