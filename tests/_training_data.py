"""Tiny Market-layout datasets of coloured JPEGs for the training tests (no `reid synth`).

Each identity is a "person" of two coloured halves with a stripe at an identity-specific
height; each camera tints and brightens the whole image; every image gets its own small
shift and pixel noise. The camera tint is deliberately strong so that raw appearance (and
an untrained network) confuses identities seen by the same camera, which training must
learn to ignore.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from reidcli.training.config import FinetuneConfig

# The one shape of the abort at a NaN/inf loss, whichever trainer stops
# (reidcli.runtime.training.NonFiniteGuard).
ABORT = re.compile(r"non-finite loss \((nan|inf|-inf)(; [^)]*)?\) at epoch \d+, (step|iteration) "
                   r"\d+; .*\. Try a lower --lr(, [^.]+)?, --amp bf16 or --amp off, or check "
                   r"the input images\.")

CAMERA_TINTS = np.array(
    [[60, -30, -30], [-30, 60, -30], [-30, -30, 60], [40, 40, -40], [-40, 40, 40], [40, -40, 40]],
    dtype=np.float32,
)


def _person(rng: np.random.Generator, colours: np.ndarray, stripe: float, cam: int,
            size: tuple[int, int], camera_strength: float) -> Image.Image:
    h, w = size
    img = np.empty((h, w, 3), dtype=np.float32)
    split = h // 2 + int(rng.integers(-2, 3))
    img[:split] = colours[0]
    img[split:] = colours[1]
    row = int(stripe * (h - 4)) + int(rng.integers(-1, 2))
    img[max(0, row):row + 3] = colours[2]
    img += camera_strength * CAMERA_TINTS[cam % len(CAMERA_TINTS)]
    img += rng.normal(0.0, 12.0, size=img.shape)
    img = np.roll(img, int(rng.integers(-2, 3)), axis=1)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_market(
    root: Path,
    train_ids: int = 8,
    test_ids: int = 4,
    cams: int = 2,
    per_cam: int = 2,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
    camera_strength: float = 1.0,
) -> Path:
    """Write ROOT/{bounding_box_train,query,bounding_box_test} and return ROOT.

    Train ids are 1..train_ids; test ids follow. Every test identity has one query image per
    camera and `per_cam` gallery images per camera.
    """
    rng = np.random.default_rng(seed)
    n = train_ids + test_ids
    colours = rng.uniform(30, 225, size=(n, 3, 3)).astype(np.float32)
    stripes = rng.uniform(0.0, 1.0, size=n)
    folders = {name: root / name for name in ("bounding_box_train", "query", "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    counter = 0

    def save(folder: Path, pid: int, cam: int) -> None:
        nonlocal counter
        counter += 1
        img = _person(rng, colours[pid - 1], stripes[pid - 1], cam, size, camera_strength)
        img.save(folder / f"{pid:04d}_c{cam + 1}s1_{counter:06d}_00.jpg", quality=92)

    for pid in range(1, n + 1):
        for cam in range(cams):
            if pid <= train_ids:
                for _ in range(per_cam):
                    save(folders["bounding_box_train"], pid, cam)
            else:
                save(folders["query"], pid, cam)
                for _ in range(per_cam):
                    save(folders["bounding_box_test"], pid, cam)
    return root


def tiny_config(market: Path, out: Path, **kw) -> FinetuneConfig:
    values = dict(
        data=f"market1501:{market}",
        output=str(out),
        backbone="vit-tiny-test",
        size=(64, 32),
        epochs=2,
        warmup_epochs=1,
        lr=0.01,
        ids_per_batch=4,
        images_per_id=2,
        workers=0,
        device="cpu",
        seed=7,
        eval_batch_size=16,
        progress=False,
    )
    values.update(kw)
    return FinetuneConfig(**values)
