"""Train/test image transforms: the TransReID recipe, built from torchvision v2 and timm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.random_erasing import RandomErasing
from torchvision.transforms import v2

HALF_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
HALF_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
"""Google ViT and LUPerson-pretrained checkpoints."""
IMAGENET_MEAN: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_MEAN)  # type: ignore[assignment]
IMAGENET_STD: tuple[float, float, float] = tuple(IMAGENET_DEFAULT_STD)  # type: ignore[assignment]
"""DeiT checkpoints."""


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
        # A plain tensor, so timm's erasing and the default collate see ordinary tensors.
        v2.ToPureTensor(),
    ]


def build_train_transform(
    size: tuple[int, int] = (256, 128),
    mean: Sequence[float] = HALF_MEAN,
    std: Sequence[float] = HALF_STD,
    flip_p: float = 0.5,
    padding: int = 10,
    erasing_p: float = 0.5,
) -> v2.Compose:
    """PIL image -> (3, H, W) float tensor.

    Resize (bicubic) -> horizontal flip -> zero pad -> random crop back to `size` ->
    normalise -> random erasing with per-pixel normal noise (area 2%-1/3, aspect 0.3-3.3).
    The geometric steps run on the PIL image, as in the reference pipeline.
    """
    return v2.Compose(
        [
            v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC),
            v2.RandomHorizontalFlip(p=flip_p),
            v2.Pad(padding),
            v2.RandomCrop(size),
            *_to_normalized_tensor(mean, std),
            RandomErasing(
                probability=erasing_p,
                mode="pixel",
                min_area=0.02,
                max_area=1 / 3,
                min_aspect=0.3,
                max_count=1,
                device="cpu",
            ),
        ]
    )


def build_test_transform(
    size: tuple[int, int] = (256, 128),
    mean: Sequence[float] = HALF_MEAN,
    std: Sequence[float] = HALF_STD,
) -> v2.Compose:
    """PIL image -> (3, H, W) float tensor: bicubic resize and normalise only."""
    return v2.Compose(
        [
            v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC),
            *_to_normalized_tensor(mean, std),
        ]
    )


def build_resize_transform(size: tuple[int, int] = (256, 128)) -> v2.Compose:
    """PIL image -> (3, H, W) uint8 tensor: the test transform up to (not including) scaling
    and normalisation, which exported ONNX graphs do themselves."""
    return v2.Compose(
        [
            v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC),
            v2.ToImage(),
            v2.ToPureTensor(),
        ]
    )
