"""Tiny run directories and image folders shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reidcli.models.checkpoint import save_model
from reidcli.models.config import ModelConfig
from reidcli.models.reid_model import build_model

SIZE = (64, 32)

FAMILIES = {
    # Overlapping patches (stride 12 < 16), JPM and SIE cameras: the most involved ViT graph.
    "vit-sie-jpm": dict(backbone="vit-tiny-test", stride=12, jpm=True, sie_camera=True,
                        num_cams=3),
    "vit-parts": dict(backbone="vit-tiny-test", part_tokens=2, neck_feat="after"),
    "vit-ics": dict(backbone="vit-tiny-test", stem="ics", stride=12),
    "dinov2-reg": dict(backbone="dinov2-reg-tiny-test", img_size=(56, 28)),
    "dinov2-sie": dict(backbone="dinov2-tiny-test", img_size=(56, 28), sie_camera=True,
                       num_cams=3),
    "swin": dict(backbone="swin-tiny-test"),
    "resnet": dict(backbone="resnet-tiny-test"),
}


def make_run(path: Path, family: str = "vit-sie-jpm", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    kw = dict(FAMILIES[family])
    kw.setdefault("img_size", SIZE)
    cfg = ModelConfig(drop_path=0.0, **kw)
    model = build_model(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".gamma", ".ls1.gamma", ".ls2.gamma")):
                # DINOv2's layer scale starts at 1e-5, which would make every feature about
                # the same and any comparison vacuous.
                p.fill_(1.0)
            if name.endswith(("bn.weight", "bn.bias")):
                p.normal_(0.0 if name.endswith("bias") else 1.0, 0.3)
    save_model(path, model, cfg)
    return path


def person(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A random blocky 'identity': 8 horizontal bands of random colours."""
    bands = rng.integers(0, 256, (8, 1, 3))
    return np.repeat(np.repeat(bands, size[0] // 8, axis=0), size[1], axis=1).astype(np.uint8)


def jitter(rng: np.random.Generator, image: np.ndarray, amount: int = 6) -> np.ndarray:
    noise = rng.integers(-amount, amount + 1, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def write_gallery(folder: Path, ids: int = 4, per_id: int = 2, seed: int = 0
                  ) -> dict[int, np.ndarray]:
    """`folder/{pid}_c{cam}_{i}.png`, `per_id` jittered views of each identity."""
    rng = np.random.default_rng(seed)
    looks = {pid: person(rng) for pid in range(1, ids + 1)}
    folder.mkdir(parents=True, exist_ok=True)
    for pid, look in looks.items():
        for i in range(per_id):
            Image.fromarray(jitter(rng, look)).save(folder / f"{pid:04d}_c{i + 1}_{i}.png")
    return looks
