"""Model configuration: everything needed to rebuild a ReID model, saved beside its weights.

Backbones come in families (`BackboneSpec.family`): the token families `vit` (patch 16) and
`dinov2` (patch 14) run TransReID's token pipeline (SIE, JPM, PASS part tokens); `swin`
(SOLIDER) and `resnet` (BoT) give one globally pooled feature map and nothing else.

The configuration is deliberately dataset-independent apart from `num_cams`/`num_views`
(SIE table size) and `num_classes` (classifier size): a run directory's `model.json` is
enough to rebuild the network for extraction without the training data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reidcli.utils.recipes import setting

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


FAMILIES = ("vit", "dinov2", "swin", "resnet")
TOKEN_FAMILIES = ("vit", "dinov2")
"""Families whose backbone is a timm VisionTransformer (a token sequence)."""
FAMILY_PATCH = {"vit": 16, "dinov2": 14}
SWIN_WINDOW = 7
SOLIDER_SEMANTIC_WEIGHT = 0.2


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone name of ours mapped onto a timm model and its constructor overrides."""

    timm_name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = HALF
    std: tuple[float, float, float] = HALF
    family: str = "vit"

    @property
    def tokens(self) -> bool:
        return self.family in TOKEN_FAMILIES

    @property
    def patch_size(self) -> int | None:
        return FAMILY_PATCH.get(self.family)

    @property
    def registers(self) -> int:
        """Register tokens that belong to the architecture (DINOv2 `-reg`), not PASS parts."""
        return int(self.overrides.get("reg_tokens", 0))


def _dinov2(timm_name: str, description: str, **overrides: Any) -> BackboneSpec:
    # DINOv2 was trained on ImageNet-normalised LVD-142M images.
    return BackboneSpec(timm_name, description, overrides, IMAGENET_MEAN, IMAGENET_STD, "dinov2")


def _dinov2_pair(size: str, timm_size: str, text: str) -> dict[str, BackboneSpec]:
    return {
        f"dinov2-{size}": _dinov2(f"vit_{timm_size}_patch14_dinov2", f"DINOv2 {text}"),
        f"dinov2-{size}-reg": _dinov2(
            f"vit_{timm_size}_patch14_reg4_dinov2",
            f"DINOv2 {text}, 4 registers",
            reg_tokens=4,
            no_embed_class=True,
        ),
    }


def _swin(timm_name: str, description: str, **overrides: Any) -> BackboneSpec:
    # SOLIDER-REID normalises with 0.5/0.5 (its LUPerson pre-training did the same).
    return BackboneSpec(timm_name, description, overrides, family="swin")


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
    **_dinov2_pair("s", "small", "ViT-S/14, 384-d, 12 blocks, 6 heads"),
    **_dinov2_pair("b", "base", "ViT-B/14, 768-d, 12 blocks, 12 heads"),
    **_dinov2_pair("l", "large", "ViT-L/14, 1024-d, 24 blocks, 16 heads"),
    **_dinov2_pair("g", "giant", "ViT-g/14, 1536-d, 40 blocks, 24 heads, SwiGLU"),
    "dinov2-tiny-test": _dinov2(
        "vit_small_patch14_dinov2",
        "DINOv2 layout, 32-d, 2 blocks, 2 heads: unit tests",
        embed_dim=32, depth=2, num_heads=2,
    ),
    "dinov2-reg-tiny-test": _dinov2(
        "vit_small_patch14_reg4_dinov2",
        "DINOv2 layout with 4 registers, 32-d, 2 blocks, 2 heads: unit tests",
        embed_dim=32, depth=2, num_heads=2, reg_tokens=4, no_embed_class=True,
    ),
    "swin-t": _swin("swin_tiny_patch4_window7_224", "Swin-T (SOLIDER), 96-d, depths 2-2-6-2"),
    "swin-s": _swin("swin_small_patch4_window7_224", "Swin-S (SOLIDER), 96-d, depths 2-2-18-2"),
    "swin-b": _swin("swin_base_patch4_window7_224", "Swin-B (SOLIDER), 128-d, depths 2-2-18-2"),
    "swin-tiny-test": _swin(
        "swin_tiny_patch4_window7_224",
        "Swin layout, 16-d, depths 1-1-2-1: unit tests",
        embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4),
    ),
    "resnet50": BackboneSpec(
        "resnet50", "ResNet-50 (BoT), last stride 1, 2048-d", {}, IMAGENET_MEAN, IMAGENET_STD,
        "resnet",
    ),
    "resnet-tiny-test": BackboneSpec(
        "resnet18",
        "ResNet-18 layout with channels 8-16-32-64, last stride 1: unit tests",
        {"channels": (8, 16, 32, 64), "stem_width": 8},
        IMAGENET_MEAN,
        IMAGENET_STD,
        "resnet",
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


def token_grid(
    img_size: tuple[int, int], stride: int, stem: str = "patch", kernel: int = PATCH_SIZE
) -> tuple[int, int]:
    """Grid of the patch tokens for an input size, stride, stem and patch kernel."""
    if stem == "ics":
        # 7x7/s2 with padding 3 gives ceil(H/2); the 8x8 projection then strides stride/2.
        h, w = ((s + 1) // 2 for s in img_size)
        return patch_grid((h, w), stride // 2, kernel=PATCH_SIZE // 2)
    return patch_grid(img_size, stride, kernel)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a `ReidModel` (saved as `model.json`)."""

    backbone: str = "vit-b"
    img_size: tuple[int, int] = (256, 128)
    stride: int | None = None
    """Patch-embedding stride of token backbones; None = the patch size (16, DINOv2 14)."""
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
    semantic_weight: float | None = None
    """SOLIDER's lambda (Swin only); None = 0.2, the SOLIDER-REID setting."""
    window_size: int | None = None
    """Swin attention window at every stage (Swin only); None = 7, as pre-trained."""
    sources: tuple[dict[str, Any], ...] = ()
    """Joint training: where each dataset's ids and cameras sit (`reidcli.data.joint.Source`
    as dicts), so that extraction gives a known dataset's images its own SIE cameras. Left
    out of model.json when empty (one dataset)."""

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
        if spec.tokens:
            self.stride = int(self.stride or spec.patch_size)  # type: ignore[arg-type]
        elif spec.family == "swin":
            if self.semantic_weight is None:
                self.semantic_weight = SOLIDER_SEMANTIC_WEIGHT
            self.semantic_weight = float(self.semantic_weight)
            self.window_size = int(self.window_size or SWIN_WINDOW)
        self._validate()

    @property
    def spec(self) -> BackboneSpec:
        return BACKBONES[self.backbone]

    @property
    def family(self) -> str:
        return self.spec.family

    def _validate(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.neck_feat not in NECK_FEATS:
            raise ValueError(f"neck_feat must be one of {NECK_FEATS}, got {self.neck_feat!r}")
        self._validate_family()
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

    def _validate_family(self) -> None:
        spec = self.spec
        if spec.family != "swin" and (self.semantic_weight is not None or self.window_size):
            raise ValueError(
                f"semantic_weight and window_size apply to the SOLIDER Swin backbones only; "
                f"{self.backbone} is a {spec.family} backbone"
            )
        if not spec.tokens:
            self._reject_token_options(spec.family)
            if spec.family == "swin":
                if not 0.0 <= self.semantic_weight <= 1.0:  # type: ignore[operator]
                    raise ValueError(
                        f"semantic_weight must be in [0, 1], got {self.semantic_weight}"
                    )
                if self.window_size < 1:  # type: ignore[operator]
                    raise ValueError(f"window_size must be >= 1, got {self.window_size}")
            return
        patch = spec.patch_size
        assert patch is not None and self.stride is not None
        if not 1 <= self.stride <= patch:
            raise ValueError(f"stride must be in 1..{patch} for {self.backbone}, got {self.stride}")
        if self.stem == "ics":
            if patch != PATCH_SIZE:
                raise ValueError(f"the ICS stem needs a patch-16 ViT, not {self.backbone}")
            if self.stride % 2:
                # The ICS stem halves the image first, so the projection's stride is stride/2.
                raise ValueError(f"the ICS stem needs an even stride, got {self.stride}")
        if self.part_tokens and spec.registers:
            raise ValueError(
                f"{self.backbone} already has {spec.registers} register tokens; PASS part tokens "
                f"need a backbone without registers"
            )
        token_grid(self.img_size, self.stride, self.stem, patch)

    def _reject_token_options(self, family: str) -> None:
        """SIE, JPM, part tokens, strides and stems act on ViT tokens; other families have none."""
        used = [
            name
            for name, on in (
                ("stride", self.stride is not None),
                ("stem", self.stem != "patch"),
                ("SIE", self.sie_enabled),
                ("JPM", self.jpm),
                ("part tokens", self.part_tokens != 0),
            )
            if on
        ]
        if used:
            raise ValueError(
                f"{', '.join(used)} need a ViT-family backbone (vit-*, deit-*, dinov2-*); "
                f"{self.backbone} is a {family} backbone with one pooled feature"
            )

    @property
    def grid(self) -> tuple[int, int]:
        """Patch-token grid (rows, cols): 16x8 / 21x10 / 22x11 at 256x128, strides 16/12/11
        (DINOv2: 18x9). Only token backbones have one."""
        patch = self.spec.patch_size
        if patch is None or self.stride is None:
            raise ValueError(f"{self.backbone} is not a token backbone: it has no token grid")
        return token_grid(self.img_size, self.stride, self.stem, patch)

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
        d["sources"] = list(d["sources"])
        if not d["sources"]:
            del d["sources"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        kwargs = dict(data)
        for key in ("img_size", "mean", "std", "sources"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


MODEL_KEY = "model_field"
"""Field metadata of a stage configuration: the ModelConfig field this setting is."""
_SAME: Any = object()
DATA_FIELDS = ("num_cams", "num_views", "num_classes", "sources")
"""ModelConfig fields that come from the training data, never from a stage's settings."""


def model_setting(name: str, section: str = "model", default: Any = _SAME) -> Any:
    """A stage-configuration field (`reidcli.utils.recipes.setting`) that is ModelConfig's
    field `name`, under the stage's own key: its default is ModelConfig's unless `default`
    is given, and `model_config_from` copies it. A model option is thus declared once, in
    ModelConfig; a stage exposes it as a recipe key with one such line."""
    if name not in _MODEL_DEFAULTS:
        raise ValueError(f"ModelConfig has no field {name!r}")
    base = setting(_MODEL_DEFAULTS[name] if default is _SAME else default, section)
    return field(default=base.default, default_factory=base.default_factory,
                 metadata={**base.metadata, MODEL_KEY: name})


def model_fields(stage: Any) -> dict[str, str]:
    """{stage field: ModelConfig field} of a stage configuration (class or instance)."""
    return {f.name: f.metadata[MODEL_KEY] for f in dataclasses.fields(stage)
            if MODEL_KEY in f.metadata}


def model_config_from(stage: Any, **overrides: Any) -> ModelConfig:
    """The ModelConfig of a stage configuration: its `model_setting` fields by name, then
    `overrides` (ModelConfig field names: what the data or the stage decides)."""
    values = {model: getattr(stage, name) for name, model in model_fields(stage).items()}
    return ModelConfig(**(values | overrides))


def stage_values(stage: Any, model: ModelConfig, names: Sequence[str]) -> dict[str, Any]:
    """The reverse: `model`'s values of the ModelConfig fields `names`, under the stage
    configuration's keys (a fine-tuning run that keeps a pre-trained model's input)."""
    keys = {m: s for s, m in model_fields(stage).items()}
    return {keys[n]: getattr(model, n) for n in names}


_MODEL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
