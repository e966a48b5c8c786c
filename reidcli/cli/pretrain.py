"""`reid pretrain`: option parsing only; the work is `reidcli.ssl.pretrain`.

Every option defaults to None so that we know which ones the user typed: those (read from
the click context by `recipe_overrides`, by config field name) override
the recipe (`--recipe`), which overrides the built-in defaults (DINO as TransReID-SSL).
"""

from __future__ import annotations

from pathlib import Path

import typer

from reidcli.cli.common import parse_size, recipe_overrides, state
from reidcli.cli.run_options import (
    PANEL_DATA,
    PANEL_MODEL,
    PANEL_OPTIM,
    PANEL_RUN,
    RunArgs,
    run_options,
)

PANEL_METHOD = "Method"


# The built-in defaults the help quotes (tests/test_cli_options.py: PretrainConfig's).
DEFAULTS: dict[str, object] = {"stem": "patch", "drop_path": 0.1, "workers": 8, "seed": 0,
                               "device": "auto"}


@run_options(DEFAULTS)
def pretrain(
    ctx: typer.Context,
    method: str | None = typer.Option(
        None, "--method", help="dino, dino-mim (PersonViT/iBOT) or pass (default: dino).",
        rich_help_panel=PANEL_METHOD),
    data: str | None = typer.Option(
        None, "--data", help="Unlabelled images: luperson:FOLDER or luperson:LIST.txt "
        "(one relative path per line, the fast path at LUPerson scale).",
        rich_help_panel=PANEL_DATA),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Folder holding the datasets (default: $REID_DATA_ROOT).",
        rich_help_panel=PANEL_DATA),
    subset: str | None = typer.Option(
        None, "--subset", help="Ordered image list to use (e.g. from `reid cfs-filter`).",
        rich_help_panel=PANEL_DATA),
    keep: float | None = typer.Option(
        None, "--keep", help="Keep this leading fraction of the list (e.g. 0.5).",
        rich_help_panel=PANEL_DATA),
    size: str | None = typer.Option(
        None, "--size", help="Global crop size HxW (default: 256x128).",
        rich_help_panel=PANEL_DATA),
    local_size: str | None = typer.Option(
        None, "--local-size", help="Local crop size HxW (default: 128x64).",
        rich_help_panel=PANEL_DATA),
    local_crops: int | None = typer.Option(
        None, "--local-crops", help="Local crops per image, dino/dino-mim (default: 8).",
        rich_help_panel=PANEL_DATA),
    person_crops: bool | None = typer.Option(
        None, "--person-crops/--square-crops", help="Crop aspect (w/h) 0.4-0.6, person-shaped "
        "(SOLIDER), instead of DINO's 3/4-4/3.", rich_help_panel=PANEL_DATA),
    lambda_cls: float | None = typer.Option(
        None, "--lambda-cls", help="dino-mim: weight of the [CLS] loss (default: 1.0).",
        rich_help_panel=PANEL_METHOD),
    lambda_mim: float | None = typer.Option(
        None, "--lambda-mim", help="dino-mim: weight of the patch loss (default: 1.0).",
        rich_help_panel=PANEL_METHOD),
    parts: int | None = typer.Option(
        None, "--parts", help="pass: part regions / [PART] tokens L (default: 3).",
        rich_help_panel=PANEL_METHOD),
    part_crops: int | None = typer.Option(
        None, "--part-crops", help="pass: local crops per region J (default: 3).",
        rich_help_panel=PANEL_METHOD),
    teacher_temp: float | None = typer.Option(
        None, "--teacher-temp", help="Teacher temperature (default: 0.04).",
        rich_help_panel=PANEL_METHOD),
    warmup_teacher_temp_epochs: int | None = typer.Option(
        None, "--warmup-teacher-temp-epochs", help="Epochs warming the teacher temperature "
        "up from 0.04 (default: 0).", rich_help_panel=PANEL_METHOD),
    backbone: str | None = typer.Option(
        None, "--backbone", help="ViT-family backbones only: vit-s, vit-b, vit-t, deit-s, "
        "deit-b, dinov2-s/b/l/g (not -reg with pass), vit-small-demo, vit-tiny-test (default: "
        "vit-s). Swin and ResNet cannot be pre-trained here.", rich_help_panel=PANEL_MODEL),
    stride: int | None = typer.Option(
        None, "--stride", help="Patch-embedding stride (default: the patch size, 16; DINOv2 14).",
        rich_help_panel=PANEL_MODEL),
    init: str | None = typer.Option(
        None, "--init", help="Start from these weights (ImageNet/timm file, DINO/iBOT/PASS "
        "checkpoint, a reid run directory).", rich_help_panel=PANEL_MODEL),
    out_dim: int | None = typer.Option(
        None, "--out-dim", help="Head prototypes K (default: 65536; 8192 for dino-mim).",
        rich_help_panel=PANEL_MODEL),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Epochs (default: 100).", rich_help_panel=PANEL_OPTIM),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Global batch size, all processes (default: 512).",
        rich_help_panel=PANEL_OPTIM),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak lr per 256 images, scaled by batch/256 (default: 5e-4).",
        rich_help_panel=PANEL_OPTIM),
    min_lr: float | None = typer.Option(
        None, "--min-lr", help="Final lr of the cosine (default: 1e-6).",
        rich_help_panel=PANEL_OPTIM),
    warmup_epochs: int | None = typer.Option(
        None, "--warmup-epochs", help="Linear lr warm-up epochs (default: 10).",
        rich_help_panel=PANEL_OPTIM),
    momentum_teacher: float | None = typer.Option(
        None, "--momentum-teacher", help="Initial teacher EMA momentum, cosine to 1 "
        "(default: 0.996).", rich_help_panel=PANEL_OPTIM),
    export_every: int | None = typer.Option(
        None, "--export-every", help="Export the teacher every N epochs (default: 1).",
        rich_help_panel=PANEL_RUN),
    checkpoint_every: int | None = typer.Option(
        None, "--checkpoint-every", help="Also write trainer.pt every N iterations "
        "(default: 0 = epoch ends only).", rich_help_panel=PANEL_RUN),
    max_iters: int | None = typer.Option(
        None, "--max-iters", help="Stop after N iterations of the schedule (resumable).",
        rich_help_panel=PANEL_RUN),
    run: RunArgs | None = None,
) -> None:
    """Self-supervised pre-training of a ViT on unlabelled person images (DINO, DINO+MIM,
    PASS); the teacher is exported as model.safetensors for `reid finetune --pretrained`."""
    from reidcli.ssl import pretrain as run_pretrain
    from reidcli.ssl.config import resolve_config, resume_config

    assert run is not None  # given by @run_options
    overrides = recipe_overrides(ctx, skip=RunArgs.NOT_FIELDS, convert={
        "data_root": ("data_root", str),
        "size": ("global_size", parse_size),
        "local_size": ("local_size", parse_size),
        "person_crops": ("crop_aspect", lambda on: (0.4, 0.6) if on else (3 / 4, 4 / 3)),
    })
    overrides |= {"progress": not state.quiet, "output": str(run.output), "resume": run.resume}
    run_pretrain(run.config(resolve_config, resume_config, overrides))
