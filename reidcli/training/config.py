"""The fine-tuning configuration: defaults, TOML recipes, command-line overrides.

Precedence: built-in defaults < recipe file (`--recipe`) < options given on the command
line. The resolved configuration is written to the run directory as `config.toml`, which
is itself a valid recipe (and is what `--resume` reads back).

Recipes are TOML; keys are the field names below, either at the top level or inside any
of the tables `[data]`, `[input]`, `[model]`, `[loss]`, `[optim]`, `[train]`, `[unsupervised]`
(the table a key sits in is only for people; `lr` means the same everywhere).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from reidcli.errors import UsageError
from reidcli.models.config import NECK_FEATS, model_setting
from reidcli.runtime.device import amp_problems, amp_setting
from reidcli.runtime.rundir import RunSchema
from reidcli.utils.recipes import setting

OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("cosine", "step")


@dataclass
class FinetuneConfig:
    """Everything `reid finetune` needs. Defaults are TransReID's ViT-B baseline on Market.

    Fields marked runtime (workers, device, evaluation cadence, output, ...) do not change
    the trained weights and may differ when a run is resumed; all others must match.
    """

    # [data]
    data: tuple[str, ...] = setting((), "data")
    """Dataset specs NAME[:PATH] understood by `reidcli.data.load_dataset`; several train
    jointly (`reidcli.data.joint`). A single string is accepted (old recipes)."""
    data_balance: bool = setting(False, "data")
    """Joint training: every batch gives each dataset an equal share of its identities,
    instead of shares that follow the datasets' image counts."""
    data_root: str | None = setting(None, "data")
    data_options: tuple[str, ...] = setting((), "data")
    """Dataset options as KEY=VALUE (e.g. the `folder` dataset's `pattern=...`); NAME.KEY=VALUE
    or N.KEY=VALUE for one dataset of several (`reidcli.data.joint`)."""
    eval_data: tuple[str, ...] = setting((), "data", runtime=True)
    """Evaluate on each of these specs' query/gallery; empty = every training dataset that
    has both. The first one's scores are the run's (best model, progress line)."""
    # [input]
    size: tuple[int, int] = model_setting("img_size", "input")
    mean: tuple[float, float, float] | None = model_setting("mean", "input")
    """Normalisation; None = the backbone's own (0.5 for ViT/LUPerson, ImageNet for DeiT)."""
    std: tuple[float, float, float] | None = model_setting("std", "input")
    flip_prob: float = setting(0.5, "input")
    padding: int = setting(10, "input")
    erase_prob: float = setting(0.5, "input")
    # [model] (the fields of reidcli.models.ModelConfig: `model_setting`)
    backbone: str = model_setting("backbone")
    stride: int | None = model_setting("stride")
    """Patch-embedding stride of ViT backbones; None = the patch size (16; DINOv2 14)."""
    stem: str = model_setting("stem")
    sie: bool = model_setting("sie_camera")
    sie_view: bool = model_setting("sie_view")
    sie_coef: float = model_setting("sie_coef")
    jpm: bool = model_setting("jpm")
    jpm_shift: int = model_setting("jpm_shift")
    jpm_shuffle: int = model_setting("jpm_shuffle")
    jpm_groups: int = model_setting("jpm_groups")
    jpm_exact_shift: bool = model_setting("jpm_exact_shift")
    neck_feat: str = model_setting("neck_feat")
    part_tokens: int = model_setting("part_tokens")
    """PASS part tokens (3 for PASS checkpoints): feature = concat(CLS, mean of PARTs)."""
    drop_path: float = model_setting("drop_path")
    semantic_weight: float | None = model_setting("semantic_weight")
    """SOLIDER's lambda for Swin backbones; None = 0.2 (SOLIDER-REID)."""
    window_size: int | None = model_setting("window_size")
    """Swin attention window; None = 7 (the pre-trained one)."""
    freeze_backbone: bool = setting(False, "model")
    """Linear probe: train only the BNNeck and classifier; the backbone runs under no_grad."""
    pretrained: str | None = setting(None, "model")
    allow_partial: bool = setting(False, "model")
    # [loss]
    label_smoothing: float = setting(0.0, "loss")
    soft_margin: bool = setting(True, "loss")
    margin: float = setting(0.3, "loss")
    """Hinge margin, used only when soft_margin is false."""
    id_loss_weight: float = setting(1.0, "loss")
    triplet_loss_weight: float = setting(1.0, "loss")
    # [optim]
    optimizer: str = setting("sgd", "optim")
    lr: float = setting(0.008, "optim")
    momentum: float = setting(0.9, "optim")
    wd: float = setting(1e-4, "optim")
    wd_bias: float | None = setting(None, "optim")
    """Weight decay of bias parameters; None = same as wd (as in every published config)."""
    bias_lr_factor: float = setting(2.0, "optim")
    epochs: int = setting(120, "optim")
    warmup_epochs: int = setting(5, "optim")
    warmup_factor: float = setting(0.01, "optim")
    min_lr_factor: float = setting(0.002, "optim")
    lr_schedule: str = setting("cosine", "optim")
    """cosine (TransReID) or step (BoT: x lr_gamma at each of lr_steps), both after warm-up."""
    lr_steps: tuple[int, ...] = setting((40, 70), "optim")
    lr_gamma: float = setting(0.1, "optim")
    lr_decay: float | None = setting(None, "optim")
    """Layer-wise lr decay: layer l of L gets lr * lr_decay**(L + 1 - l); None = off."""
    # [train]
    ids_per_batch: int = setting(16, "train")
    images_per_id: int = setting(4, "train")
    amp: str = amp_setting()
    """auto = fp16 with GradScaler on CUDA (the reference), off on CPU."""
    sync_bn: bool = setting(False, "train")
    """Under DDP on GPUs, BatchNorm layers (BNNeck, ResNet, ICS stem) use the statistics of
    the global batch (SyncBatchNorm) instead of each process's share."""
    seed: int = setting(1234, "train")
    workers: int = setting(8, "train", runtime=True)
    eval_every: int = setting(0, "train", runtime=True)
    """Evaluate on query/gallery every N epochs; 0 = only after the last epoch."""
    allow_no_eval: bool = setting(False, "train", runtime=True)
    """Train without evaluation (with a warning) when no query has a positive in the gallery,
    instead of refusing to start."""
    eval_batch_size: int = setting(256, "train", runtime=True)
    log_every: int = setting(50, "train", runtime=True)
    device: str = setting("auto", "train", runtime=True)
    progress: bool = setting(True, "train", runtime=True)
    tensorboard: bool = setting(False, "train", runtime=True)
    """Also write the metrics records to RUN_DIR/tb as TensorBoard scalars."""
    # [unsupervised] cluster contrast (reidcli.unsupervised); train labels never read
    unsupervised: bool = setting(False, "unsupervised")
    eps: float = setting(0.6, "unsupervised")
    """DBSCAN radius on the k-reciprocal Jaccard distance (0.6 Market, 0.7 MSMT17)."""
    min_samples: int = setting(4, "unsupervised")
    k1: int = setting(30, "unsupervised")
    k2: int = setting(6, "unsupervised")
    memory_momentum: float = setting(0.2, "unsupervised")
    """Weight of the old centroid in m <- mu m + (1 - mu) f."""
    temperature: float = setting(0.05, "unsupervised")
    memory_update: str = setting("hard", "unsupervised")
    """hard (toward the batch's least similar instance per cluster) or mean (every instance)."""
    iters: int = setting(200, "unsupervised")
    """Optimiser steps per epoch (P x K batches over the pseudo labels)."""
    camera_norm: bool = setting(False, "unsupervised")
    """Cluster features minus their camera's mean (camera-aware); off = the reference."""
    # not saved: where the run goes and whether to continue it
    output: str = setting("", "run", runtime=True)
    resume: bool = setting(False, "run", runtime=True)

    def __post_init__(self) -> None:
        # A single spec, as before data became a list (Python callers, old configs).
        for name in ("data", "eval_data"):
            value = getattr(self, name)
            if value is None or isinstance(value, str):
                setattr(self, name, (value,) if value else ())
            else:
                setattr(self, name, tuple(value))

    @property
    def batch_size(self) -> int:
        return self.ids_per_batch * self.images_per_id

    @property
    def triplet_margin(self) -> float | None:
        return None if self.soft_margin else self.margin

    def with_absolute_paths(self) -> FinetuneConfig:
        """A copy whose data, data root, pretrained weights and subset list are absolute
        paths: config.toml stores these, so `--resume` works from any directory (a run
        saved with relative paths resolves them against the working directory as before)."""
        from reidcli.data.roots import (
            absolute_data_root,
            absolute_if_present,
            absolute_path,
            absolute_spec,
        )

        options = []
        for pair in self.data_options:
            key, sep, value = pair.partition("=")
            if sep and key.strip().rpartition(".")[2] == "subset":
                pair = f"{key}={absolute_if_present(value)}"
            options.append(pair)
        return dataclasses.replace(
            self, data=tuple(absolute_spec(d) for d in self.data),
            data_root=absolute_data_root(self.data_root, (*self.data, *self.eval_data)),
            eval_data=tuple(absolute_spec(d) for d in self.eval_data),
            pretrained=absolute_path(self.pretrained, ("timm",)), data_options=tuple(options),
        )

    def validate(self) -> FinetuneConfig:
        """Raise UsageError on values that cannot work; return self for chaining."""
        problems = SCHEMA.number_problems(self)
        if not self.data:
            problems.append("no dataset given (--data NAME[:PATH] or `data` in the recipe)")
        for name in ("data", "eval_data"):
            specs = getattr(self, name)
            if len(set(specs)) < len(specs):
                problems.append(f"{name} names a dataset twice: {list(specs)!r}")
        if not self.output:
            problems.append("no run directory given (-o/--output RUN_DIR)")
        problems += amp_problems(self.amp)
        if self.optimizer.lower() not in OPTIMIZER_NAMES:
            problems.append(
                f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got {self.optimizer!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.lr_schedule == "step" and list(self.lr_steps) != sorted(set(self.lr_steps)):
            problems.append(f"lr_steps must be increasing epochs, got {self.lr_steps!r}")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            problems.append(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.freeze_backbone and self.lr_decay is not None:
            problems.append("lr_decay applies to full fine-tuning, not to --freeze-backbone")
        if self.freeze_backbone and (self.sie or self.sie_view or self.jpm):
            problems.append(
                "--freeze-backbone trains only the BNNeck and classifier; SIE and JPM need "
                "gradients through the backbone"
            )
        if self.neck_feat not in NECK_FEATS:
            problems.append(f"neck_feat must be before or after, got {self.neck_feat!r}")
        problems += SCHEMA.schedule_problems(self)
        if self.ids_per_batch < 2:
            problems.append("ids_per_batch must be >= 2 (the triplet loss needs negatives)")
        if self.images_per_id < 1:
            problems.append("images_per_id must be >= 1")
        if self.eval_every < 0:
            problems.append("eval_every must be >= 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append("label_smoothing must be in [0, 1)")
        if len(self.size) != 2 or min(self.size) <= 0:
            problems.append(f"size must be two positive numbers (H, W), got {self.size!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                problems.append(f"{name} must have 3 values, got {value!r}")
        if self.unsupervised:
            problems.extend(self._unsupervised_problems())
        if problems:
            raise UsageError("invalid fine-tuning configuration: " + "; ".join(problems))
        return self

    def _unsupervised_problems(self) -> list[str]:
        from reidcli.unsupervised.memory import MEMORY_UPDATES
        from reidcli.unsupervised.pseudo_labels import ClusterParams

        problems = ClusterParams(self.eps, self.min_samples, self.k1, self.k2).problems()
        if self.memory_update not in MEMORY_UPDATES:
            problems.append(f"memory_update must be hard or mean, got {self.memory_update!r}")
        if not 0.0 <= self.memory_momentum <= 1.0:
            problems.append(f"memory_momentum must be in [0, 1], got {self.memory_momentum}")
        if self.temperature <= 0:
            problems.append(f"temperature must be positive, got {self.temperature}")
        if self.iters < 1:
            problems.append(f"iters must be >= 1, got {self.iters}")
        if self.jpm:
            problems.append("--unsupervised trains the global feature; drop --jpm")
        return problems


SCHEMA = RunSchema(
    FinetuneConfig, {"size": int, "mean": float, "std": float, "lr_steps": int,
                     "data_options": str, "data": str, "eval_data": str},
    one_or_many=frozenset({"data", "eval_data"}), loaded=FinetuneConfig.with_absolute_paths,
)
FIELDS = SCHEMA.fields


# The shared machinery (reidcli.utils.recipes, reidcli.runtime.rundir) under this stage's names.
runtime_fields, load_recipe, resolve_config, config_to_toml, config_differences = (
    SCHEMA.runtime_fields, SCHEMA.load_recipe, SCHEMA.resolve, SCHEMA.to_toml, SCHEMA.differences
)
load_run_config, resume_config = SCHEMA.load_run_config, SCHEMA.resume_config
