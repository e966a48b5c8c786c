"""The fine-tuning configuration: defaults, TOML recipes, command-line overrides.

Precedence: built-in defaults < recipe file (`--recipe`) < options given on the command
line. The resolved configuration is written to the run directory as `config.toml`, which
is itself a valid recipe (and is what `--resume` reads back).

Recipes are TOML; keys are the field names below, either at the top level or inside any
of the tables `[data]`, `[input]`, `[model]`, `[loss]`, `[optim]`, `[train]` (the table a
key sits in is only for people; `lr` means the same everywhere).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidcli.errors import ReidError
from reidcli.training.toml_writer import dumps

AMP_MODES = ("auto", "bf16", "fp16", "off")
NECK_FEATS = ("before", "after")
OPTIMIZER_NAMES = ("sgd", "adamw")


def _f(default: Any, section: str, runtime: bool = False, **kw: Any) -> Any:
    meta = {"section": section, "runtime": runtime}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class FinetuneConfig:
    """Everything `reid finetune` needs. Defaults are TransReID's ViT-B baseline on Market.

    Fields marked runtime (workers, device, evaluation cadence, output, ...) do not change
    the trained weights and may differ when a run is resumed; all others must match.
    """

    # [data]
    data: str = _f("", "data")
    """Dataset spec NAME[:PATH] understood by `reidcli.data.load_dataset`."""
    data_root: str | None = _f(None, "data")
    # [input]
    size: tuple[int, int] = _f((256, 128), "input")
    mean: tuple[float, float, float] | None = _f(None, "input")
    """Normalisation; None = the backbone's own (0.5 for ViT/LUPerson, ImageNet for DeiT)."""
    std: tuple[float, float, float] | None = _f(None, "input")
    flip_prob: float = _f(0.5, "input")
    padding: int = _f(10, "input")
    erase_prob: float = _f(0.5, "input")
    # [model]
    backbone: str = _f("vit-b", "model")
    stride: int = _f(16, "model")
    stem: str = _f("patch", "model")
    sie: bool = _f(False, "model")
    sie_view: bool = _f(False, "model")
    sie_coef: float = _f(3.0, "model")
    jpm: bool = _f(False, "model")
    jpm_shift: int = _f(5, "model")
    jpm_shuffle: int = _f(2, "model")
    jpm_groups: int = _f(4, "model")
    jpm_exact_shift: bool = _f(False, "model")
    neck_feat: str = _f("before", "model")
    part_tokens: int = _f(0, "model")
    """PASS part tokens (3 for PASS checkpoints): feature = concat(CLS, mean of PARTs)."""
    drop_path: float = _f(0.1, "model")
    pretrained: str | None = _f(None, "model")
    allow_partial: bool = _f(False, "model")
    # [loss]
    label_smoothing: float = _f(0.0, "loss")
    soft_margin: bool = _f(True, "loss")
    margin: float = _f(0.3, "loss")
    """Hinge margin, used only when soft_margin is false."""
    id_loss_weight: float = _f(1.0, "loss")
    triplet_loss_weight: float = _f(1.0, "loss")
    # [optim]
    optimizer: str = _f("sgd", "optim")
    lr: float = _f(0.008, "optim")
    momentum: float = _f(0.9, "optim")
    wd: float = _f(1e-4, "optim")
    wd_bias: float | None = _f(None, "optim")
    """Weight decay of bias parameters; None = same as wd (as in every published config)."""
    bias_lr_factor: float = _f(2.0, "optim")
    epochs: int = _f(120, "optim")
    warmup_epochs: int = _f(5, "optim")
    warmup_factor: float = _f(0.01, "optim")
    min_lr_factor: float = _f(0.002, "optim")
    # [train]
    ids_per_batch: int = _f(16, "train")
    images_per_id: int = _f(4, "train")
    amp: str = _f("auto", "train")
    """auto = fp16 with GradScaler on CUDA (the reference), off on CPU."""
    seed: int = _f(1234, "train")
    workers: int = _f(8, "train", runtime=True)
    eval_every: int = _f(0, "train", runtime=True)
    """Evaluate on query/gallery every N epochs; 0 = only after the last epoch."""
    eval_batch_size: int = _f(256, "train", runtime=True)
    log_every: int = _f(50, "train", runtime=True)
    device: str = _f("auto", "train", runtime=True)
    progress: bool = _f(True, "train", runtime=True)
    # not saved: where the run goes and whether to continue it
    output: str = _f("", "run", runtime=True)
    resume: bool = _f(False, "run", runtime=True)

    @property
    def batch_size(self) -> int:
        return self.ids_per_batch * self.images_per_id

    @property
    def triplet_margin(self) -> float | None:
        return None if self.soft_margin else self.margin

    def validate(self) -> FinetuneConfig:
        """Raise ReidError on values that cannot work; return self for chaining."""
        problems = []
        if not self.data:
            problems.append("no dataset given (--data NAME[:PATH] or `data` in the recipe)")
        if not self.output:
            problems.append("no run directory given (-o/--output RUN_DIR)")
        if self.amp not in AMP_MODES:
            problems.append(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.optimizer.lower() not in OPTIMIZER_NAMES:
            problems.append(
                f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got {self.optimizer!r}"
            )
        if self.neck_feat not in NECK_FEATS:
            problems.append(f"neck_feat must be before or after, got {self.neck_feat!r}")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
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
        if problems:
            raise ReidError("invalid fine-tuning configuration: " + "; ".join(problems))
        return self


FIELDS = {f.name: f for f in dataclasses.fields(FinetuneConfig)}
TUPLE_FIELDS = {"size", "mean", "std"}
FLOAT_FIELDS = {n for n, f in FIELDS.items() if "float" in str(f.type) and n not in TUPLE_FIELDS}


def runtime_fields() -> set[str]:
    return {n for n, f in FIELDS.items() if f.metadata.get("runtime")}


def _coerce(name: str, value: Any, source: str) -> Any:
    if name in TUPLE_FIELDS:
        if not isinstance(value, list | tuple):
            raise ReidError(f"{source}: `{name}` must be a list, got {value!r}")
        conv = int if name == "size" else float
        return tuple(conv(v) for v in value)
    if name in FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _flatten(data: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if isinstance(item, dict):
                raise ReidError(f"{source}: tables nest one level only (`{key}.{name}`)")
            if name not in FIELDS:
                close = difflib.get_close_matches(name, FIELDS, n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                raise ReidError(f"{source}: unknown setting `{name}`{hint}")
            if name in flat:
                raise ReidError(f"{source}: `{name}` is set twice")
            flat[name] = _coerce(name, item, source)
    return flat


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a TOML recipe into {field: value}; unknown keys are an error (typos otherwise
    silently fall back to defaults)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReidError(f"recipe {p} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ReidError(f"recipe {p} is not valid TOML: {err}") from None
    return _flatten(data, str(p))


def resolve_config(
    recipe: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> FinetuneConfig:
    """defaults < recipe < overrides (only the options the user actually set)."""
    values: dict[str, Any] = {}
    if recipe is not None:
        values.update(load_recipe(recipe))
    for name, value in (overrides or {}).items():
        if name not in FIELDS:
            raise ReidError(f"unknown setting `{name}`")
        values[name] = _coerce(name, value, "command line")
    return FinetuneConfig(**values)


def config_to_toml(cfg: FinetuneConfig, header: str = "") -> str:
    """The resolved configuration as a sectioned TOML recipe (run location excluded)."""
    tables: dict[str, dict[str, Any]] = {}
    for name, f in FIELDS.items():
        section = f.metadata["section"]
        if section == "run":
            continue
        tables.setdefault(section, {})[name] = getattr(cfg, name)
    return dumps(tables, header=header)


def config_differences(
    saved: FinetuneConfig, requested: FinetuneConfig, ignore: set[str]
) -> list[str]:
    """Fields whose values differ, formatted `name: saved -> requested`."""
    diffs = []
    for name in FIELDS:
        if name in ignore:
            continue
        a, b = getattr(saved, name), getattr(requested, name)
        if a != b:
            diffs.append(f"{name}: {a!r} -> {b!r}")
    return diffs


def load_run_config(run_dir: str | Path) -> FinetuneConfig:
    """The resolved configuration saved in a run directory (for `--resume`)."""
    from reidcli.errors import TrainingError
    from reidcli.training.rundir import CONFIG

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise TrainingError(f"cannot resume: {path} does not exist (not a fine-tuning run?)")
    return resolve_config(path, {"output": str(run_dir), "resume": True})


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """The saved configuration of `run_dir` with the options given again applied on top.

    Whether the result may continue the run (only runtime options changed) is checked by
    `finetune` itself, so library users get the same check.
    """
    cfg = load_run_config(run_dir)
    return dataclasses.replace(cfg, **(overrides or {}), output=str(run_dir), resume=True)
