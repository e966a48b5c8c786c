"""Anything that is an image -> the uint8 (B, 3, H, W) batches the deployable graph takes.

Resizing is `reid extract`'s (`build_resize_transform`: the test transform without its
scaling and normalisation, which the graph does), so an `Embedder` and a bank agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image

from reidcli.data.images import read_image
from reidcli.data.transforms import build_resize_transform
from reidcli.errors import ReidError

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]  # noqa: UP007 (a runtime alias)


def to_pil(item: ImageLike) -> Image.Image:
    """A PIL RGB image from a PIL image, an HxWx3 uint8 RGB array or a path."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ReidError(f"arrays must be HxWx3 uint8 RGB images, got shape {item.shape} "
                            f"and dtype {item.dtype}")
        return Image.fromarray(item, mode="RGB")
    if isinstance(item, (str, os.PathLike)):
        return read_image(Path(item))
    raise ReidError(f"cannot embed a {type(item).__name__}: pass PIL images, HxWx3 uint8 "
                    f"arrays or image paths")


class Resizer:
    """Images -> uint8 (B, 3, H, W) numpy batch at the model's size."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.transform = build_resize_transform(size)

    def __call__(self, items: Sequence[ImageLike]) -> np.ndarray:
        if not items:
            return np.empty((0, 3, *self.size), np.uint8)
        return torch.stack([self.transform(to_pil(i)) for i in items]).numpy()
