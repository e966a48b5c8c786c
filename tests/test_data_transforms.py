"""The TransReID transforms and the torch Dataset over records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from test_data_trees import write_image
from timm.data.random_erasing import RandomErasing
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from reidcli.data.records import ImageRecord
from reidcli.data.torch_dataset import ReidImageDataset
from reidcli.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_test_transform,
    build_train_transform,
)
from reidcli.errors import DatasetError


def _image() -> Image.Image:
    return Image.effect_noise((50, 100), 60).convert("RGB")


def test_recipe_steps_and_parameters() -> None:
    steps = build_train_transform((256, 128)).transforms
    resize, flip, pad, crop = steps[:4]
    assert isinstance(resize, v2.Resize) and resize.interpolation == v2.InterpolationMode.BICUBIC
    assert isinstance(flip, v2.RandomHorizontalFlip) and flip.p == 0.5
    assert isinstance(pad, v2.Pad) and pad.padding == 10 and pad.fill == 0
    assert isinstance(crop, v2.RandomCrop) and tuple(crop.size) == (256, 128)
    erase = steps[-1]
    assert isinstance(erase, RandomErasing)
    assert erase.probability == 0.5 and erase.mode == "pixel" and erase.rand_color is False
    assert erase.per_pixel and erase.min_area == 0.02 and erase.max_area == pytest.approx(1 / 3)
    assert erase.log_aspect_ratio == pytest.approx((-1.2040, 1.2040), abs=1e-4)


def test_test_transform_shape_and_range() -> None:
    x = build_test_transform((64, 32))(_image())
    assert type(x) is torch.Tensor and x.shape == (3, 64, 32) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.5 and x.max() > 0.5
    white = build_test_transform((8, 4), IMAGENET_MEAN, IMAGENET_STD)(
        Image.new("RGB", (4, 8), (255, 255, 255))
    )
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert white[:, 0, 0].tolist() == pytest.approx(expected, abs=1e-5)


def test_train_transform_shape_and_randomness() -> None:
    torch.manual_seed(0)
    t = build_train_transform((64, 32))
    outs = [t(_image().copy()) for _ in range(4)]
    assert all(o.shape == (3, 64, 32) for o in outs)
    assert not torch.equal(outs[0], outs[1])
    no_aug = build_train_transform((64, 32), flip_p=0.0, padding=0, erasing_p=0.0)
    img = _image()
    assert torch.equal(no_aug(img), build_test_transform((64, 32))(img))


def test_dataset_items_and_loader(tmp_path: Path) -> None:
    records = [
        ImageRecord(str(write_image(tmp_path / f"{i}.jpg")), pid=i, camid=i % 2, viewid=3)
        for i in range(3)
    ]
    ds = ReidImageDataset(records, build_test_transform((16, 8)))
    x, pid, camid, viewid, index = ds[2]
    assert x.shape == (3, 16, 8) and (pid, camid, viewid, index) == (2, 0, 3, 2)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch[0].shape == (3, 3, 16, 8) and batch[4].tolist() == [0, 1, 2]
    broken = ReidImageDataset([ImageRecord(str(tmp_path / "gone.jpg"), 0, 0)], ds.transform)
    with pytest.raises(DatasetError, match="gone.jpg"):
        broken[0]
