"""Tiny inputs for the cfs-filter tests: a LUPerson-style folder and proxy run directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reidcli.models.checkpoint import save_model
from reidcli.models.config import ModelConfig
from reidcli.models.reid_model import build_model

SIZE = (64, 32)


def write_source(root: Path, n: int = 24, seed: int = 0) -> Path:
    """`n` random images in two per-video folders (so relative paths have a folder part)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        path = root / f"v{i % 2:02d}" / f"img_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        # A random base colour per image plus noise: features (and scores) differ per image.
        base = rng.integers(0, 255, 3)
        noise = rng.integers(-40, 40, (*SIZE, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)
    return root


def write_proxy(path: Path, seed: int = 0, **kw) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone="vit-tiny-test", img_size=SIZE, drop_path=0.0, **kw)
    save_model(path, build_model(cfg), cfg)
    return path
