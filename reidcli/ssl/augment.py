"""Multi-crop augmentation (DINO recipe on person images) and PASS region crops.

Composed from `torchvision.transforms.v2`, with the blur done by Pillow. Crops stay PIL
images until the final conversion: Pillow's resize, colour and blur operations are several
times faster than the tensor versions on CPU workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

Size = tuple[int, int]

DEFAULT_ASPECT = (3 / 4, 4 / 3)
"""torchvision's (and the reference DINO's) crop aspect range, as w/h."""
PERSON_ASPECT = (0.4, 0.6)
"""Person-shaped crops (w/h), as in SOLIDER: a 256x128 crop keeps the body's proportions."""

MAX_BLUR_SIGMA = 2.0
DINO_COLOUR_JITTER = (0.4, 0.4, 0.2, 0.1)
"""DINO's ColorJitter: brightness, contrast, saturation, hue."""


@dataclass(frozen=True)
class CropSpec:
    """Multi-crop settings; sizes are (height, width)."""

    global_size: Size = (256, 128)
    local_size: Size = (128, 64)
    local_crops: int = 8
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    aspect: tuple[float, float] = DEFAULT_ASPECT
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    colour_jitter: tuple[float, float, float, float] = DINO_COLOUR_JITTER
    colour_jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    solarize_prob: float = 0.2
    """Of global view 2 only."""
    blur_sigma: tuple[float, float] = (0.1, MAX_BLUR_SIGMA)
    """In pixels of the output crop (DINO's range is for 224-256 px crops)."""


class RandomGaussianBlur:
    """Gaussian blur with sigma drawn uniformly from `sigma`, applied by Pillow.

    DINO's reference blurs with Pillow too (`ImageFilter.GaussianBlur`, radius = sigma).
    torchvision's float convolution made the whole multi-crop chain twice as expensive at the
    published crop sizes (benchmarks/bench_augment.py), and augmentation is what bounds
    pre-training throughput on CPU workers. The sigma is drawn from torch's generator so a
    sample's views stay reproducible from its seed.
    """

    def __init__(self, sigma: tuple[float, float] = (0.1, MAX_BLUR_SIGMA)) -> None:
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        lo, hi = self.sigma
        return img.filter(ImageFilter.GaussianBlur(lo + (hi - lo) * float(torch.rand(()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"


def _blur(spec: CropSpec, p: float) -> v2.Transform:
    return v2.RandomApply([RandomGaussianBlur(spec.blur_sigma)], p=p)


def _crop(size: Size, scale: tuple[float, float], aspect: tuple[float, float]) -> v2.Transform:
    return v2.RandomResizedCrop(
        size, scale=scale, ratio=aspect, interpolation=v2.InterpolationMode.BICUBIC,
        antialias=True,
    )


def _flip_colour(spec: CropSpec) -> list[v2.Transform]:
    # Colour invariance is what DINO's photometric chain teaches. Where clothing colour is
    # the identity (as in ReID), users weaken it: all of it is configurable.
    out: list[v2.Transform] = [v2.RandomHorizontalFlip(p=0.5)]
    if spec.colour_jitter_prob > 0 and any(spec.colour_jitter):
        out.append(v2.RandomApply([v2.ColorJitter(*spec.colour_jitter)],
                                  p=spec.colour_jitter_prob))
    if spec.grayscale_prob > 0:
        out.append(v2.RandomGrayscale(p=spec.grayscale_prob))
    return out


def _solarize(spec: CropSpec) -> list[v2.Transform]:
    return [v2.RandomSolarize(threshold=128, p=spec.solarize_prob)] if spec.solarize_prob else []


def _normalise(spec: CropSpec) -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(spec.mean, spec.std)]


class MultiCrop:
    """Image -> [global_1, global_2, local_1, ..., local_n] (DINO's three pipelines).

    Global 1: always blurred. Global 2: blurred with p 0.1 and solarised with p 0.2.
    Locals: blurred with p 0.5. All share flip, colour jitter (p 0.8) and grayscale (p 0.2).
    The photometric probabilities and strengths come from the spec.
    """

    def __init__(self, spec: CropSpec) -> None:
        self.spec = spec
        g, loc = spec.global_size, spec.local_size
        self.global1 = v2.Compose(
            [_crop(g, spec.global_scale, spec.aspect), *_flip_colour(spec), _blur(spec, 1.0),
             *_normalise(spec)]
        )
        self.global2 = v2.Compose(
            [_crop(g, spec.global_scale, spec.aspect), *_flip_colour(spec), _blur(spec, 0.1),
             *_solarize(spec), *_normalise(spec)]
        )
        self.local = v2.Compose(
            [_crop(loc, spec.local_scale, spec.aspect), *_flip_colour(spec), _blur(spec, 0.5),
             *_normalise(spec)]
        )

    @property
    def num_crops(self) -> int:
        return 2 + self.spec.local_crops

    def globals_(self, img: Image.Image) -> list[torch.Tensor]:
        return [self.global1(img), self.global2(img)]

    def __call__(self, img: Image.Image) -> list[torch.Tensor]:
        return self.globals_(img) + [self.local(img) for _ in range(self.spec.local_crops)]


def part_regions(height: int, parts: int, fraction: float = 0.5) -> list[tuple[int, int]]:
    """(top, height) of `parts` horizontal strips of `fraction` of the image height,
    evenly spaced from the top to the bottom: 3 halves start at 0, H/4 and H/2.

    Pixel positions are truncated as in PASS's `crop(image, int(0.25 * height), 0,
    int(0.5 * height), width)`: for an odd height the strips are int(H/2) tall.
    """
    if parts < 1:
        raise ValueError("need at least one part region")
    strip = max(1, int(fraction * height))
    if parts == 1:
        return [(0, strip)]
    step = (1 - fraction) / (parts - 1)
    return [(int(k * step * height), strip) for k in range(parts)]


class PartCrop(MultiCrop):
    """PASS views: the two DINO globals, then `crops_per_part` locals from each region.

    Output order: [global_1, global_2, region_0 x J, region_1 x J, ...]; the local crops of
    region k are `spec.local_crops` = J consecutive entries, so view 2 + k*J + j came from
    region k.
    """

    def __init__(self, spec: CropSpec, parts: int, region_fraction: float = 0.5) -> None:
        super().__init__(spec)
        self.parts = parts
        self.region_fraction = region_fraction

    @property
    def num_crops(self) -> int:
        return 2 + self.parts * self.spec.local_crops

    def __call__(self, img: Image.Image) -> list[torch.Tensor]:
        crops = self.globals_(img)
        width, height = img.size
        for top, strip in part_regions(height, self.parts, self.region_fraction):
            region = v2.functional.crop(img, top, 0, strip, width)
            crops += [self.local(region) for _ in range(self.spec.local_crops)]
        return crops


def region_of_view(view: int, crops_per_part: int) -> int | None:
    """The region a PartCrop view was taken from; None for the two global views."""
    return None if view < 2 else (view - 2) // crops_per_part

