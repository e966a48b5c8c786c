"""Saving and loading a model in a run directory: `model.safetensors` + `model.json`.

`model.json` is the `ModelConfig` (everything needed to rebuild the network). The same JSON
is stored in the safetensors metadata, so a weights file on its own is self-describing and a
mixed-up pair (weights from one save, JSON from another) is detected.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from reidcli.errors import CheckpointError
from reidcli.models.config import ModelConfig
from reidcli.models.layouts import CONFIG_NAME, WEIGHTS_NAME
from reidcli.models.reid_model import ReidModel, build_model, unwrap
from reidcli.models.weights_file import read_metadata, read_weights, stored_config
from reidcli.utils.io import atomic_path, atomic_write_text, remove_orphans

log = logging.getLogger(__name__)


def save_model(
    run_dir: str | os.PathLike[str], model: ReidModel, cfg: ModelConfig | None = None
) -> Path:
    """Write `model.safetensors` then `model.json` into `run_dir`, each atomically."""
    model = unwrap(model)
    cfg = cfg or model.cfg
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_orphans(run_dir, (WEIGHTS_NAME,))  # a killed save's temp is as big as the weights
    config_json = json.dumps(cfg.to_dict(), indent=2, sort_keys=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS_NAME) as tmp:
        # One metadata key only: safetensors writes its metadata map in arbitrary order, so
        # with two keys identical weights could hash differently (extract's provenance and
        # cfs-filter's reuse checks compare file checksums).
        save_file(state, str(tmp), metadata={"config": config_json})
    atomic_write_text(run_dir / CONFIG_NAME, config_json + "\n")
    return run_dir / WEIGHTS_NAME


def read_config(run_dir: str | os.PathLike[str]) -> ModelConfig:
    """The `ModelConfig` of a run directory (from model.json)."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {run_dir} is not a reidcli run directory")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid model config: {exc}") from exc


def export_config(path: str | os.PathLike[str]) -> ModelConfig | None:
    """The `ModelConfig` a reidcli export carries, whichever way it is named; else None.

    A run directory: its model.json. A file: the config in its safetensors metadata (every
    `save_model` writes one), else the model.json beside it (a file of a run directory, e.g.
    a pre-training run's trainer.pt). Anything else (timm, DINO or PASS files) has none.
    """
    path = Path(path)
    if path.is_dir():
        return read_config(path) if (path / CONFIG_NAME).is_file() else None
    if not path.is_file():
        return None
    if path.suffix == ".safetensors":
        stored = stored_config(read_metadata(path), path)
        if stored is not None:
            try:
                return ModelConfig.from_dict(stored)
            except (ValueError, TypeError) as exc:
                raise CheckpointError(f"{path}: invalid model config in metadata: {exc}") from exc
    if (path.parent / CONFIG_NAME).is_file():
        return read_config(path.parent)
    return None


def load_model(
    run_dir: str | os.PathLike[str],
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[ReidModel, ModelConfig]:
    """Rebuild the model of a run directory exactly, in eval mode.

    `num_classes=None` keeps the saved classifier; `0` builds the model without classifiers
    (extraction does not need the dataset's identities). Any other value must match.
    """
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    weights = run_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found")
    state, meta = read_weights(weights)
    stored = stored_config(meta, weights)
    if stored is not None and stored != cfg.to_dict():
        raise CheckpointError(f"{weights} and {CONFIG_NAME} in {run_dir} come from different saves")
    if num_classes is not None and num_classes not in (0, cfg.num_classes):
        raise CheckpointError(
            f"{run_dir} has a {cfg.num_classes}-class classifier, not {num_classes}: use "
            f"load_pretrained to start a new classifier"
        )
    if num_classes == 0:
        cfg.num_classes = 0
    if cfg.num_classes == 0:
        state = {k: v for k, v in state.items() if ".classifier." not in k}
    model = build_model(cfg)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{weights} does not match its {CONFIG_NAME}: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{weights} does not match its {CONFIG_NAME}: missing {result.missing_keys[:8]}, "
            f"unexpected {result.unexpected_keys[:8]}"
        )
    log.debug("loaded %s (%s)", weights, cfg.backbone)
    return model.to(device).eval(), cfg
