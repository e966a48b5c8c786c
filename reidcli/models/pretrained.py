"""Fitting pretrained weights to a `ReidModel`: position-grid resizing, reporting, strictness.

Rules (also in docs/models.md):
- Position embeddings: prefix slots are split off, the patch grid is resized bilinearly
  (align_corners=False, no antialias; DINOv2: bicubic, as its own runtime interpolation)
  from an explicit old grid to the model's grid.
- The old grid is, in order: the `old_grid` argument; the checkpoint's metadata (our
  model.json, DINO/PASS `args.height/width/patch_size`); the model's own grid when the token
  count matches; a square grid (ImageNet 14x14, 24x24, ...); the one known person layout with
  that many tokens (kernel 16, stride 16/12/11 at 256x128 or 384x128: 16x8, 21x10, 22x11, ...).
  Anything else is an error asking for `old_grid`.
- Class/part position slots: when the checkpoint and the model disagree (PASS-style tables
  without a class slot vs. ViT tables with one), slot vectors are folded into their tokens, or
  a zero slot is added; both are exact.
- Heads, SIE and JPM's local branch are expected to be missing; JPM's local branch is then
  copied from the loaded last block. Classifier/SIE tables of another size, and heads/SIE/JPM
  weights the model was built without, are dropped (they are dataset- or option-specific).
  Every other missing, unexpected or mis-shaped key is an error unless `allow_partial`.
- Swin (SOLIDER, Microsoft, timm) and ResNet (timm/torchvision) checkpoints are mapped by
  their family: see `swin_weights`; a ResNet's ImageNet classifier `fc.*` is dropped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from reidcli.errors import CheckpointError
from reidcli.models.config import BACKBONES, patch_grid
from reidcli.models.layouts import Source, read_source
from reidcli.models.reid_model import ReidModel, unwrap

log = logging.getLogger(__name__)

EXPECTED_MISSING = ("heads.", "sie.", "jpm.")
DATASET_SPECIFIC = ("heads.", "sie.")
KNOWN_SOURCE_SIZES = ((256, 128), (384, 128))
KNOWN_SOURCE_STRIDES = (16, 12, 11)
_LIST_LIMIT = 12


@dataclass
class LoadReport:
    """What `load_pretrained` did. Keys are the model's (`backbone.blocks.0...`)."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Model keys the checkpoint does not have (heads, SIE and JPM's local branch expected)."""
    unexpected: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Checkpoint keys deliberately not loaded (other tasks' heads, mask embeddings, ...)."""
    mismatched: list[str] = field(default_factory=list)
    """`key: checkpoint shape vs model shape`, skipped (only possible with allow_partial)."""
    notes: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when something the model needs was not loaded (beyond heads/SIE/JPM)."""
        unexpected_missing = [k for k in self.missing if not k.startswith(EXPECTED_MISSING)]
        return bool(unexpected_missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        return self.summary().splitlines()[0]

    def summary(self) -> str:
        lines = [
            f"pretrained {self.source} ({self.layout}): {len(self.loaded)} tensors loaded, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.resized)} resized, {len(self.dropped)} dropped"
        ]
        lines += [f"  {note}" for note in self.notes]
        for name in ("missing", "unexpected", "mismatched", "dropped"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"  {name}: {_short_list(keys)}")
        return "\n".join(lines)


def _short_list(keys: list[str]) -> str:
    head = ", ".join(keys[:_LIST_LIMIT])
    return head + (f", ... ({len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else "")


def infer_old_grid(
    num_tokens: int,
    model_grid: tuple[int, int],
    hint: tuple[int, int] | None = None,
) -> tuple[int, int] | None:
    """The grid a checkpoint's `num_tokens` patch positions were laid out on (rule above)."""
    if hint is not None and hint[0] * hint[1] == num_tokens:
        return hint
    if model_grid[0] * model_grid[1] == num_tokens:
        return model_grid
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return side, side
    known = {
        patch_grid(size, stride)
        for size in KNOWN_SOURCE_SIZES
        for stride in KNOWN_SOURCE_STRIDES
        if math.prod(patch_grid(size, stride)) == num_tokens
    }
    return known.pop() if len(known) == 1 else None


def resize_grid(
    pos: torch.Tensor,
    old: tuple[int, int],
    new: tuple[int, int],
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """(1, old_h*old_w, D) -> (1, new_h*new_w, D): align_corners=False, no antialias."""
    return resample_abs_pos_embed(
        pos,
        new_size=list(new),
        old_size=list(old),
        num_prefix_tokens=0,
        interpolation=interpolation,
        antialias=False,
        align_corners=False,
    )


def load_pretrained(
    model: ReidModel,
    path: str | Path,
    allow_partial: bool = False,
    old_grid: tuple[int, int] | None = None,
) -> LoadReport:
    """Load weights from any supported layout into `model` and report what happened.

    `path` is a file (.pth/.pt/.bin, .safetensors, .npz), a run directory of ours, or
    "timm" for timm's own pretrained weights of the model's backbone.

    Raises `CheckpointError` (naming keys and shapes) on anything but a complete backbone
    load unless `allow_partial`; nothing is written into the model in that case.
    """
    model = unwrap(model)
    spec = BACKBONES[model.cfg.backbone]
    src = read_source(path, timm_name=None if spec.overrides else spec.timm_name)
    report = LoadReport(source=str(path), layout=src.layout, dropped=list(src.dropped))
    report.notes += src.notes
    if model.token_backbone:
        backbone = _fit_backbone(model, src, old_grid, report)
    else:
        backbone = _fit_pooled_backbone(model, src, report)
    state = {f"backbone.{k}": v for k, v in backbone.items()} | src.extras
    target = model.state_dict()

    to_load: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in target and key.startswith(EXPECTED_MISSING):
            # ReID parts this model was built without (no JPM, no SIE, fewer branches).
            report.dropped.append(key)
        elif key not in target:
            report.unexpected.append(key)
        elif value.shape != target[key].shape:
            what = f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target[key].shape)}"
            if key.startswith(DATASET_SPECIFIC):
                report.dropped.append(key)
                report.notes.append(f"dataset-specific {what}: kept the fresh one")
            else:
                report.mismatched.append(what)
        else:
            to_load[key] = value
    report.missing = [k for k in target if k not in state]

    if report.partial:
        message = _partial_message(report)
        if not allow_partial:
            raise CheckpointError(message + "; pass allow_partial (--allow-partial) to load anyway")
        log.warning("partial load: %s", message)

    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    if model.jpm is not None and not any(k.startswith("jpm.") for k in to_load):
        model.sync_jpm()
        report.notes.append("JPM local branch copied from the loaded last block and norm")
    log.info(report.summary())
    return report


def _partial_message(report: LoadReport) -> str:
    parts = []
    if report.mismatched:
        parts.append(f"shape mismatches: {_short_list(report.mismatched)}")
    if report.unexpected:
        parts.append(f"keys the model does not have: {_short_list(report.unexpected)}")
        if any(k.endswith("reg_token") for k in report.unexpected):
            parts.append(
                "(the checkpoint has register or PASS part tokens: use a -reg DINOv2 backbone "
                "or set part_tokens)"
            )
    missing = [k for k in report.missing if not k.startswith(EXPECTED_MISSING)]
    if missing:
        parts.append(f"keys missing from the checkpoint: {_short_list(missing)}")
    return f"{report.source} does not fit the model: " + "; ".join(parts)


def _fit_pooled_backbone(
    model: ReidModel, src: Source, report: LoadReport
) -> dict[str, torch.Tensor]:
    """Swin / ResNet checkpoints in the model's key names."""
    if model.cfg.family == "swin":
        from reidcli.models.swin_weights import fit_swin_state

        state, dropped, resized, notes, layout = fit_swin_state(model.backbone, src.backbone)
        report.layout = layout if src.layout in ("timm", "safetensors") else (
            f"{src.layout}+{layout}"
        )
        report.dropped += dropped
        report.resized += [f"backbone.{k}" for k in resized]
        report.notes += notes
        return state
    state = {}
    for key, value in src.backbone.items():
        if key.startswith("fc."):
            report.dropped.append(key)  # the ImageNet classifier
        else:
            state[key] = value
    return state


def _fit_backbone(
    model: ReidModel, src: Source, old_grid: tuple[int, int] | None, report: LoadReport
) -> dict[str, torch.Tensor]:
    """Adapt the checkpoint's position table and patch kernel to the model's backbone."""
    bb = dict(src.backbone)
    vit = model.backbone
    if "pos_embed" in bb and vit.pos_embed is not None:
        _fit_pos_embed(model, bb, src, old_grid, report)
    weight = bb.get("patch_embed.proj.weight")
    own = vit.patch_embed.proj.weight
    if (
        weight is not None
        and weight.ndim == 4
        and weight.shape[:2] == own.shape[:2]
        and weight.shape[2:] != own.shape[2:]
    ):
        # FlexiViT-style pseudo-inverse resampling keeps the patch response (timm's helper).
        bb["patch_embed.proj.weight"] = resample_patch_embed(weight, list(own.shape[2:]))
        report.resized.append("backbone.patch_embed.proj.weight")
        report.notes.append(
            f"patch kernel {tuple(weight.shape[2:])} -> {tuple(own.shape[2:])} (resampled)"
        )
    return bb


def _fit_pos_embed(
    model: ReidModel,
    bb: dict[str, torch.Tensor],
    src: Source,
    old_grid: tuple[int, int] | None,
    report: LoadReport,
) -> None:
    vit = model.backbone
    pos = bb["pos_embed"]
    if pos.ndim != 3 or pos.shape[0] != 1:
        return  # left for the shape check to report
    total = pos.shape[1]
    new_grid = tuple(vit.patch_embed.grid_size)
    reg = bb["reg_token"].shape[1] if "reg_token" in bb else 0
    if old_grid is not None:
        slots_options = [total - old_grid[0] * old_grid[1]]
        if slots_options[0] not in {0, 1, 1 + reg}:
            raise CheckpointError(
                f"old grid {old_grid[0]}x{old_grid[1]} does not fit a position table of {total} "
                f"tokens (with 0, 1 or 1+{reg} prefix slots)"
            )
    elif src.prefix_slots is not None:
        slots_options = [src.prefix_slots]
    else:
        slots_options = list(dict.fromkeys([1, 0, 1 + reg]))
    for slots in slots_options:
        if total - slots <= 0:
            continue
        grid = old_grid or infer_old_grid(total - slots, new_grid, src.grid)
        if grid is not None and grid[0] * grid[1] == total - slots:
            break
    else:
        raise CheckpointError(
            f"cannot tell the grid of the checkpoint's position table ({total} tokens): pass "
            f"old_grid=(rows, cols) (e.g. (14, 14) for ImageNet, (16, 8) for LUPerson)"
        )
    prefix, grid_pos = pos[:, :slots], pos[:, slots:]
    if grid != new_grid:
        # DINOv2 resizes its 37x37 table bicubically at run time; keep its convention.
        mode = "bicubic" if model.cfg.family == "dinov2" else "bilinear"
        grid_pos = resize_grid(grid_pos, grid, new_grid, mode)
        report.resized.append("backbone.pos_embed")
        report.notes.append(
            f"pos_embed grid {grid[0]}x{grid[1]} -> {new_grid[0]}x{new_grid[1]} "
            f"({mode}, align_corners=False, no antialias)"
        )
    model_slots = 0 if vit.no_embed_class else vit.num_prefix_tokens
    if slots != model_slots:
        _fold_prefix_slots(bb, prefix)
        prefix = pos.new_zeros(1, model_slots, pos.shape[2])
        report.notes.append(
            f"pos_embed prefix slots {slots} -> {model_slots}: slot vectors folded into their "
            f"tokens (exact)"
        )
    bb["pos_embed"] = torch.cat([prefix, grid_pos], dim=1)


def _fold_prefix_slots(bb: dict[str, torch.Tensor], prefix: torch.Tensor) -> None:
    """Add position slots to the tokens they belong to: [CLS, reg_1..reg_R]."""
    if prefix.shape[1] == 0:
        return
    if "cls_token" not in bb:
        raise CheckpointError("the checkpoint has a class position slot but no cls_token")
    bb["cls_token"] = bb["cls_token"] + prefix[:, :1]
    if prefix.shape[1] > 1:
        if "reg_token" not in bb or bb["reg_token"].shape[1] != prefix.shape[1] - 1:
            raise CheckpointError("the checkpoint's register position slots have no tokens")
        bb["reg_token"] = bb["reg_token"] + prefix[:, 1:]
