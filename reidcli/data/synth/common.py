"""Primitives every synth module shares: the error type, colours and seed derivation."""

from __future__ import annotations

import numpy as np

from reidcli.errors import ReidError
from reidcli.utils.checks import non_negative

RGB = tuple[int, int, int]


class SynthError(ReidError):
    """Bad options for the synthetic generator, or an output folder it must not overwrite."""


# Stream tags keep the random numbers of unrelated decisions independent: adding a camera,
# an identity or an image never shifts the draws of another one, which is what makes
# `market --cams 6` and `unlabeled --target-cams 6` agree on camera 3, and what lets worker
# processes render any subset of images with the same result as a single process.
TAG_PALETTE = 1
TAG_CAMERA = 2
TAG_IDENTITY = 3
TAG_SPLIT = 4
TAG_PLAN = 5
TAG_IMAGE = 6
TAG_DOMAIN = 7
TAG_VIDEO = 8
TAG_BACKGROUND = 9
TAG_NOISE = 10


def rng_for(seed: int, tag: int, *keys: int) -> np.random.Generator:
    """A generator determined only by (seed, tag, keys)."""
    return np.random.default_rng([seed, tag, *keys])


def check_seed(seed: int) -> int:
    if seed < 0:
        raise SynthError(f"--seed must be a non-negative integer, got {seed}")
    return seed


def check_camera_strength(strength: float) -> float:
    non_negative(("--camera-strength", strength), error=SynthError)
    return strength


def check_size(size: tuple[int, int], what: str = "--size") -> tuple[int, int]:
    h, w = size
    # Below this the body parts collapse to single pixels and nothing is learnable.
    if h < 32 or w < 16:
        raise SynthError(f"{what} must be at least 32x16 (HxW), got {h}x{w}")
    if h > 2048 or w > 2048:
        raise SynthError(f"{what} must be at most 2048x2048, got {h}x{w}")
    return size


def clamp_rgb(values: np.ndarray | tuple[float, float, float]) -> RGB:
    r, g, b = (int(min(255, max(0, round(float(v))))) for v in values)
    return (r, g, b)
