"""The pre-training configuration: defaults, TOML recipes, command-line overrides.

Precedence: built-in defaults < recipe (`--recipe`) < options given on the command line.
The resolved configuration is written to the run directory as `config.toml`, itself a
valid recipe, which `--resume` reads back. Recipe keys are the field names below, at the
top level or inside any of the tables `[data]`, `[input]`, `[model]`, `[method]`,
`[loss]`, `[optim]`, `[train]` (the table is only for people).

Defaults are DINO as TransReID-SSL ran it on LUPerson (docs/methods.md); settings whose
published value depends on the method (`out_dim`, `local_scale`) default to None and are
filled in per method by `resolved()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from reidcli.errors import UsageError
from reidcli.models.config import model_setting
from reidcli.runtime.device import amp_problems, amp_setting
from reidcli.runtime.rundir import RunSchema
from reidcli.ssl.augment import CropSpec
from reidcli.utils.recipes import setting

METHODS = ("dino", "dino-mim", "pass")
_CROP = CropSpec()
"""The multi-crop defaults (DINO's, at ReID's 256x128) live in one place: augment.CropSpec."""


@dataclass
class PretrainConfig:
    """Everything `reid pretrain` needs; runtime fields may change when resuming."""

    # [data]
    data: str = setting("", "data")
    """Dataset spec, e.g. `luperson:PATH` (a folder or a list file of relative paths)."""
    data_root: str | None = setting(None, "data")
    subset: str | None = setting(None, "data")
    """Ordered list (e.g. a CFS list) of the images to use."""
    data_options: tuple[str, ...] = setting((), "data")
    """Dataset options `KEY=VALUE` (e.g. `duplicates=keep` for a list with repeated lines)."""
    keep: float | None = setting(None, "data")
    """Keep this leading fraction of the list."""
    # [input]
    global_size: tuple[int, int] = model_setting("img_size", "input", _CROP.global_size)
    local_size: tuple[int, int] = setting(_CROP.local_size, "input")
    local_crops: int = setting(_CROP.local_crops, "input")
    """Local crops per image (DINO / DINO+MIM). PASS uses parts x part_crops instead."""
    global_scale: tuple[float, float] = setting(_CROP.global_scale, "input")
    local_scale: tuple[float, float] | None = setting(None, "input")
    """None: (0.05, 0.4) for dino / dino-mim, (0.1, 0.8) of the region for pass."""
    crop_aspect: tuple[float, float] = setting(_CROP.aspect, "input")
    """Crop aspect range (w/h); (0.4, 0.6) keeps person crops person-shaped (SOLIDER)."""
    mean: tuple[float, float, float] = model_setting("mean", "input", _CROP.mean)
    std: tuple[float, float, float] = model_setting("std", "input", _CROP.std)
    colour_jitter: tuple[float, float, float, float] = setting(_CROP.colour_jitter, "input")
    """ColorJitter brightness, contrast, saturation, hue."""
    colour_jitter_prob: float = setting(_CROP.colour_jitter_prob, "input")
    grayscale_prob: float = setting(_CROP.grayscale_prob, "input")
    solarize_prob: float = setting(_CROP.solarize_prob, "input")
    """Solarisation of the second global view."""
    blur_sigma: tuple[float, float] = setting(_CROP.blur_sigma, "input")
    """Gaussian blur sigma range in pixels of the output crop. DINO's (0.1, 2.0) is sized
    for 224-256 px crops; scale it with the crop height for small inputs."""
    # [model]
    backbone: str = model_setting("backbone", default="vit-s")
    stem: str = model_setting("stem")
    stride: int | None = model_setting("stride")
    """Patch-embedding stride; None = the backbone's patch size (16; DINOv2 14)."""
    drop_path: float = model_setting("drop_path")
    init: str | None = setting(None, "model")
    """Start from these weights (a checkpoint file or a run directory)."""
    allow_partial: bool = setting(False, "model")
    out_dim: int | None = setting(None, "model")
    """Prototypes K; None: 65536 (dino, pass) or 8192 (dino-mim, shared head)."""
    head_hidden: int = setting(2048, "model")
    head_bottleneck: int = setting(256, "model")
    norm_last_layer: bool = setting(True, "model")
    # [method]
    method: str = setting("dino", "method")
    lambda_cls: float = setting(1.0, "method")
    lambda_mim: float = setting(1.0, "method")
    mask_ratio: tuple[float, float] = setting((0.1, 0.5), "method")
    mask_prob: float = setting(0.5, "method")
    """Probability that a global view is masked (dino-mim)."""
    parts: int = setting(3, "method")
    part_crops: int = setting(3, "method")
    region_fraction: float = setting(0.5, "method")
    # [loss]
    teacher_temp: float = setting(0.04, "loss")
    warmup_teacher_temp: float = setting(0.04, "loss")
    warmup_teacher_temp_epochs: int = setting(0, "loss")
    student_temp: float = setting(0.1, "loss")
    center_momentum: float = setting(0.9, "loss")
    patch_temp: float = setting(0.07, "loss")
    warmup_patch_temp: float = setting(0.04, "loss")
    warmup_patch_temp_epochs: int = setting(30, "loss")
    # [optim]
    epochs: int = setting(100, "optim")
    batch_size: int = setting(512, "optim")
    """Global batch (all processes together)."""
    lr: float = setting(5e-4, "optim")
    """Peak learning rate for a batch of 256; scaled linearly with batch_size."""
    min_lr: float = setting(1e-6, "optim")
    """Learning rate at the end of the cosine that follows the warm-up."""
    warmup_epochs: int = setting(10, "optim")
    weight_decay: float = setting(0.04, "optim")
    """Weight decay at the start, cosine to `weight_decay_end` (weights only, not biases)."""
    weight_decay_end: float = setting(0.4, "optim")
    momentum_teacher: float = setting(0.996, "optim")
    """Teacher EMA momentum at the start, cosine to 1 at the end."""
    clip_grad: float = setting(3.0, "optim")
    """Per-parameter gradient-norm clip; 0 disables."""
    freeze_last_layer: int = setting(1, "optim")
    """Epochs during which the heads' last layers are not updated."""
    # [train]
    amp: str = amp_setting()
    """auto = fp16 with GradScaler on CUDA, off on CPU."""
    seed: int = setting(0, "train")
    workers: int = setting(8, "train", runtime=True)
    device: str = setting("auto", "train", runtime=True)
    progress: bool = setting(True, "train", runtime=True)
    tensorboard: bool = setting(False, "train", runtime=True)
    """Also write the metrics records to RUN_DIR/tb as TensorBoard scalars."""
    export_every: int = setting(1, "train", runtime=True)
    """Export the teacher as model.safetensors every N epochs (and always at the end)."""
    checkpoint_every: int = setting(0, "train", runtime=True)
    """Also write trainer.pt every N iterations (0 = at epoch ends only)."""
    max_iters: int = setting(0, "train", runtime=True)
    """Stop after this many iterations of the schedule (0 = run it all); resumable."""
    # not saved
    output: str = setting("", "run", runtime=True)
    resume: bool = setting(False, "run", runtime=True)

    def resolved(self) -> PretrainConfig:
        """A copy with method-dependent defaults filled in and absolute paths, validated."""
        from reidcli.data.roots import (
            absolute_data_root,
            absolute_if_present,
            absolute_path,
            absolute_spec,
        )

        # Absolute paths in config.toml: `--resume` then works from any directory.
        cfg = dataclasses.replace(
            self, data=absolute_spec(self.data),
            data_root=absolute_data_root(self.data_root, (self.data,)),
            subset=absolute_if_present(self.subset), init=absolute_path(self.init, ("timm",)),
        )
        if cfg.out_dim is None:
            cfg.out_dim = 8192 if cfg.method == "dino-mim" else 65536
        if cfg.local_scale is None:
            cfg.local_scale = (0.1, 0.8) if cfg.method == "pass" else (0.05, 0.4)
        return cfg.validate()

    @property
    def num_local_views(self) -> int:
        return self.parts * self.part_crops if self.method == "pass" else self.local_crops

    def validate(self) -> PretrainConfig:
        problems = SCHEMA.number_problems(self)
        if not self.data:
            problems.append("no dataset given (--data luperson:PATH or `data` in the recipe)")
        if not self.output:
            problems.append("no run directory given (-o/--output RUN_DIR)")
        if self.method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        problems += backbone_problems(self.backbone, self.method)
        problems += amp_problems(self.amp)
        problems += SCHEMA.schedule_problems(self)
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.keep is not None and not 0 < self.keep <= 1:
            problems.append(f"keep must be a fraction in (0, 1], got {self.keep}")
        if self.method == "pass" and (self.parts < 1 or self.part_crops < 1):
            problems.append("pass needs parts >= 1 and part_crops >= 1")
        if self.method != "pass" and self.local_crops < 0:
            problems.append("local_crops must be >= 0")
        if not 0 <= self.mask_prob <= 1:
            problems.append(f"mask_prob must be in [0, 1], got {self.mask_prob}")
        lo, hi = self.mask_ratio
        if not 0 <= lo <= hi < 1:
            problems.append(f"mask_ratio must satisfy 0 <= low <= high < 1, got {self.mask_ratio}")
        probs = (self.colour_jitter_prob, self.grayscale_prob, self.solarize_prob)
        if not all(0 <= p <= 1 for p in probs):
            problems.append("colour_jitter_prob, grayscale_prob, solarize_prob must be in [0, 1]")
        jitter = tuple(self.colour_jitter)
        if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5:
            problems.append("colour_jitter is (brightness, contrast, saturation, hue), each >= 0, "
                            f"hue <= 0.5; got {jitter}")
        blo, bhi = self.blur_sigma
        if not 0 < blo <= bhi:
            problems.append(f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma}")
        if self.out_dim is not None and self.out_dim < 1:
            problems.append("out_dim must be >= 1")
        if self.max_iters < 0 or self.checkpoint_every < 0 or self.export_every < 0:
            problems.append("max_iters, checkpoint_every and export_every must be >= 0")
        if self.num_local_views and tuple(self.local_size) == tuple(self.global_size):
            problems.append("local_size must differ from global_size (one pass per size)")
        if problems:
            raise UsageError("invalid pre-training configuration: " + "; ".join(problems))
        return self


def backbone_problems(backbone: str, method: str) -> list[str]:
    """Why `method` cannot pre-train `backbone` (empty when it can).

    Every method here (DINO, DINO+MIM, PASS) works on a ViT token sequence: the CLS token
    feeds the DINO head, MIM masks patch tokens, PASS adds [PART] tokens. ViT/DeiT and DINOv2
    backbones qualify (DINOv2 `-reg` ones not with PASS: their register slots are taken);
    Swin (SOLIDER) and ResNet have no tokens.
    """
    from reidcli.models.config import BACKBONES

    spec = BACKBONES.get(backbone)
    if spec is None:
        return [f"unknown backbone {backbone!r}; choose from {', '.join(BACKBONES)}"]
    if not spec.tokens:
        return [
            f"pre-training ({', '.join(METHODS)}) needs a ViT-family backbone (vit-*, deit-*, "
            f"dinov2-*); {backbone} is a {spec.family} backbone without tokens: start "
            f"`reid finetune` from its published weights instead (SOLIDER / ImageNet)"
        ]
    if method == "pass" and spec.registers:
        return [
            f"pass needs [PART] tokens in the register slots, which {backbone} already uses "
            f"for its {spec.registers} registers: use the backbone without -reg"
        ]
    return []


SCHEMA = RunSchema(PretrainConfig, {
    "global_size": int, "local_size": int, "global_scale": float, "local_scale": float,
    "crop_aspect": float, "mean": float, "std": float, "mask_ratio": float,
    "colour_jitter": float, "blur_sigma": float, "data_options": str,
})
FIELDS = SCHEMA.fields


# The shared machinery (reidcli.utils.recipes, reidcli.runtime.rundir) under this stage's names.
runtime_fields, load_recipe, resolve_config, config_to_toml, config_differences = (
    SCHEMA.runtime_fields, SCHEMA.load_recipe, SCHEMA.resolve, SCHEMA.to_toml, SCHEMA.differences
)
load_run_config, resume_config = SCHEMA.load_run_config, SCHEMA.resume_config
