"""Model configuration: everything needed to rebuild a ReID model, saved beside its weights.

The configuration is deliberately dataset-independent apart from `num_cams`/`num_views`
(SIE table size) and `num_classes` (classifier size): a run directory's `model.json` is
enough to rebuild the network for extraction without the training data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone name of ours mapped onto a timm model and VisionTransformer overrides."""

    timm_name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = HALF
    std: tuple[float, float, float] = HALF


BACKBONES: dict[str, BackboneSpec] = {
    "vit-b": BackboneSpec("vit_base_patch16_224", "ViT-B/16, 768-d, 12 blocks, 12 heads"),
    # The 384-d ViT-S/16 of DINO / TransReID-SSL (not TransReID's own 768-d "vit_small").
    "vit-s": BackboneSpec("vit_small_patch16_224", "ViT-S/16, 384-d, 12 blocks, 6 heads"),
    "vit-t": BackboneSpec("vit_tiny_patch16_224", "ViT-Ti/16, 192-d, 12 blocks, 3 heads"),
    "deit-s": BackboneSpec(
        "deit_small_patch16_224",
        "DeiT-S/16, 384-d, 12 blocks, 6 heads",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
    "deit-b": BackboneSpec(
        "deit_base_patch16_224",
        "DeiT-B/16, 768-d, 12 blocks, 12 heads",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
    "vit-small-demo": BackboneSpec(
        "vit_tiny_patch16_224",
        "192-d, 6 blocks, 3 heads: minutes-long CPU demos",
        overrides={"depth": 6},
    ),
    "vit-tiny-test": BackboneSpec(
        "vit_tiny_patch16_224",
        "64-d, 3 blocks, 2 heads: unit tests",
        overrides={"embed_dim": 64, "depth": 3, "num_heads": 2},
    ),
}

STEMS = ("patch", "ics")
NECK_FEATS = ("before", "after")
PATCH_SIZE = 16


def patch_grid(img_size: tuple[int, int], stride: int, kernel: int = PATCH_SIZE) -> tuple[int, int]:
    """Token grid of a kernel-`kernel` convolution with `stride` and no padding."""
    h, w = img_size
    if h < kernel or w < kernel:
        raise ValueError(f"image size {h}x{w} is smaller than the {kernel}-pixel patch")
    return (h - kernel) // stride + 1, (w - kernel) // stride + 1


def token_grid(img_size: tuple[int, int], stride: int, stem: str = "patch") -> tuple[int, int]:
    """Grid of the patch tokens for an input size, stride and stem."""
    if stem == "ics":
        # 7x7/s2 with padding 3 gives ceil(H/2); the 8x8 projection then strides stride/2.
        h, w = ((s + 1) // 2 for s in img_size)
        return patch_grid((h, w), stride // 2, kernel=PATCH_SIZE // 2)
    return patch_grid(img_size, stride)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a `ReidModel` (saved as `model.json`)."""

    backbone: str = "vit-b"
    img_size: tuple[int, int] = (256, 128)
    stride: int = 16
    stem: str = "patch"
    sie_camera: bool = False
    sie_view: bool = False
    num_cams: int = 1
    num_views: int = 1
    sie_coef: float = 3.0
    jpm: bool = False
    jpm_shift: int = 5
    jpm_shuffle: int = 2
    jpm_groups: int = 4
    jpm_exact_shift: bool = False
    neck_feat: str = "before"
    part_tokens: int = 0
    num_classes: int = 0
    drop_path: float = 0.1
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        self.img_size = (int(self.img_size[0]), int(self.img_size[1]))
        spec = BACKBONES.get(self.backbone)
        if spec is None:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; choose from {', '.join(BACKBONES)}"
            )
        # None means "whatever the backbone's usual weights were trained with".
        self.mean = tuple(float(v) for v in (self.mean or spec.mean))  # type: ignore[assignment]
        self.std = tuple(float(v) for v in (self.std or spec.std))  # type: ignore[assignment]
        self._validate()

    def _validate(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.neck_feat not in NECK_FEATS:
            raise ValueError(f"neck_feat must be one of {NECK_FEATS}, got {self.neck_feat!r}")
        if not 1 <= self.stride <= PATCH_SIZE:
            raise ValueError(f"stride must be in 1..{PATCH_SIZE}, got {self.stride}")
        if self.stem == "ics" and self.stride % 2:
            # The ICS stem halves the image first, so the projection's stride is stride/2.
            raise ValueError(f"the ICS stem needs an even stride, got {self.stride}")
        token_grid(self.img_size, self.stride, self.stem)
        if self.num_cams < 1 or self.num_views < 1:
            raise ValueError("num_cams and num_views must be >= 1")
        if self.jpm:
            if self.jpm_groups < 1 or self.jpm_shuffle < 1 or self.jpm_shift < 1:
                raise ValueError("jpm_groups, jpm_shuffle and jpm_shift must be >= 1")
            if self.num_patches < self.jpm_groups:
                raise ValueError(f"{self.num_patches} patches cannot form {self.jpm_groups} groups")
            if self.part_tokens:
                raise ValueError("JPM and PASS part tokens cannot be combined")
        if self.part_tokens < 0 or self.num_classes < 0:
            raise ValueError("part_tokens and num_classes must be >= 0")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch-token grid (rows, cols): 16x8 / 21x10 / 22x11 at 256x128, strides 16/12/11."""
        return token_grid(self.img_size, self.stride, self.stem)

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid
        return rows * cols

    @property
    def sie_enabled(self) -> bool:
        return self.sie_camera or self.sie_view

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("img_size", "mean", "std"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        kwargs = dict(data)
        for key in ("img_size", "mean", "std"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)
