"""`reid finetune`: option parsing only; the work is `reidcli.training.finetune`.

Every option defaults to None so that we know which ones the user typed: those (read from
the click context by `recipe_overrides`, by config field name) override
the recipe (`--recipe`), which overrides the built-in defaults (TransReID ViT-B).
"""

from __future__ import annotations

from pathlib import Path

import typer

from reidcli.cli.common import given, parse_size, recipe_overrides, state
from reidcli.cli.run_options import (
    PANEL_DATA,
    PANEL_MODEL,
    PANEL_OPTIM,
    PANEL_RUN,
    RunArgs,
    run_options,
)

PANEL_USL = "Unsupervised (cluster contrast)"


def parse_batch(text: str) -> tuple[int, int]:
    """`PxK` (e.g. `16x4`) -> (identities per batch, images per identity)."""
    try:
        p, k = (int(v) for v in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected PxK such as 16x4, got {text!r}") from None
    if p <= 0 or k <= 0:
        raise typer.BadParameter(f"P and K must be positive, got {text!r}")
    return p, k


# The built-in defaults the help quotes (tests/test_cli_options.py: FinetuneConfig's).
DEFAULTS: dict[str, object] = {"stem": "patch", "drop_path": 0.1, "workers": 8, "seed": 1234,
                               "device": "auto"}


@run_options(DEFAULTS)
def finetune(
    ctx: typer.Context,
    data: list[str] | None = typer.Option(
        None, "--data", metavar="NAME[:PATH]", help="Dataset NAME or NAME:PATH (see `reid "
        "datasets`); repeat it to train on several jointly (ids and cameras get one range "
        "per dataset).",
        rich_help_panel=PANEL_DATA),
    data_balance: bool | None = typer.Option(
        None, "--data-balance/--no-data-balance", help="Joint training: every batch gives "
        "each dataset an equal share of its identities (default: shares follow the image "
        "counts).", rich_help_panel=PANEL_DATA),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Folder holding the datasets (default: $REID_DATA_ROOT).",
        rich_help_panel=PANEL_DATA),
    data_option: list[str] | None = typer.Option(
        None, "--data-option", "-O", metavar="[NAME.]KEY=VALUE", help="Dataset option, "
        "repeatable (e.g. -O 'pattern=id(?P<pid>\\d+)_cam(?P<cam>\\d+)' -O cam_base=0 for "
        "`folder`). KEY=VALUE applies to every --data; NAME.KEY=VALUE (or N.KEY=VALUE, the "
        "N-th --data) to one, and to an --eval-data of that name.", rich_help_panel=PANEL_DATA),
    eval_data: list[str] | None = typer.Option(
        None, "--eval-data", metavar="NAME[:PATH]", help="Evaluate on this dataset's "
        "query/gallery; repeatable "
        "(default: every --data with query/gallery). The first one's mAP selects best/.",
        rich_help_panel=PANEL_DATA),
    size: str | None = typer.Option(
        None, "--size", help="Input size HxW (default: 256x128).", rich_help_panel=PANEL_DATA),
    backbone: str | None = typer.Option(
        None, "--backbone", help="ViT: vit-b, vit-s, vit-t, deit-s, deit-b; DINOv2: "
        "dinov2-s/b/l/g (+ -reg for 4 registers); SOLIDER Swin: swin-t/s/b; BoT: resnet50; "
        "tests/demos: vit-small-demo, *-tiny-test (see docs/backbones.md) (default: vit-b).",
        rich_help_panel=PANEL_MODEL),
    stride: int | None = typer.Option(
        None, "--stride", help="Patch-embedding stride of ViT backbones: 16, 12 or 11 "
        "(default: the patch size, 16; DINOv2 14).", rich_help_panel=PANEL_MODEL),
    sie: bool | None = typer.Option(
        None, "--sie/--no-sie", help="Side information embedding of the camera.",
        rich_help_panel=PANEL_MODEL),
    sie_view: bool | None = typer.Option(
        None, "--sie-view/--no-sie-view", help="SIE of the viewpoint (vehicles).",
        rich_help_panel=PANEL_MODEL),
    sie_coef: float | None = typer.Option(
        None, "--sie-coef", help="SIE weight lambda (default: 3.0).", rich_help_panel=PANEL_MODEL),
    jpm: bool | None = typer.Option(
        None, "--jpm/--no-jpm", help="Jigsaw patch module (local branches).",
        rich_help_panel=PANEL_MODEL),
    jpm_shift: int | None = typer.Option(
        None, "--jpm-shift", help="JPM shift (default: 5; 8 for vehicles).",
        rich_help_panel=PANEL_MODEL),
    jpm_shuffle: int | None = typer.Option(
        None, "--jpm-shuffle", help="JPM shuffle groups (default: 2).",
        rich_help_panel=PANEL_MODEL),
    jpm_groups: int | None = typer.Option(
        None, "--jpm-groups", help="JPM local branches (default: 4).",
        rich_help_panel=PANEL_MODEL),
    jpm_exact_shift: bool | None = typer.Option(
        None, "--jpm-exact-shift/--jpm-reference-shift",
        help="Rotate by exactly --jpm-shift tokens (the paper) instead of shift-1 (the "
        "reference code) (default: reference).", rich_help_panel=PANEL_MODEL),
    neck_feat: str | None = typer.Option(
        None, "--neck-feat", help="Test feature before or after the BNNeck (default: before).",
        rich_help_panel=PANEL_MODEL),
    part_tokens: int | None = typer.Option(
        None, "--part-tokens", help="PASS part tokens (3 for PASS checkpoints) (default: 0).",
        rich_help_panel=PANEL_MODEL),
    semantic_weight: float | None = typer.Option(
        None, "--semantic-weight", help="SOLIDER's semantic weight lambda in [0, 1] (Swin "
        "backbones) (default: 0.2).", rich_help_panel=PANEL_MODEL),
    freeze_backbone: bool | None = typer.Option(
        None, "--freeze-backbone/--no-freeze-backbone", help="Linear probe: train only the "
        "BNNeck and classifier on a frozen backbone (DINOv2 recipe).",
        rich_help_panel=PANEL_MODEL),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Initial weights: a checkpoint file (timm/ImageNet, DINO, "
        "iBOT, PASS, DINOv2 (timm or Meta), SOLIDER, torchvision ResNet, a reid run) or `timm`.",
        rich_help_panel=PANEL_MODEL),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Training epochs (default: 120).", rich_help_panel=PANEL_OPTIM),
    lr: float | None = typer.Option(
        None, "--lr", help="Base learning rate (biases x2) (default: 0.008).",
        rich_help_panel=PANEL_OPTIM),
    batch: str | None = typer.Option(
        None, "--batch", help="Batch as PxK: P identities x K images (default: 16x4).",
        rich_help_panel=PANEL_OPTIM),
    ids_per_batch: int | None = typer.Option(
        None, "--ids-per-batch", help="P of the PK batch.", rich_help_panel=PANEL_OPTIM),
    images_per_id: int | None = typer.Option(
        None, "--images-per-id", help="K of the PK batch.", rich_help_panel=PANEL_OPTIM),
    optimizer: str | None = typer.Option(
        None, "--optimizer", help="sgd (momentum 0.9), adam or adamw (default: sgd).",
        rich_help_panel=PANEL_OPTIM),
    lr_decay: float | None = typer.Option(
        None, "--lr-decay", help="Layer-wise lr decay in (0, 1] for full fine-tuning (e.g. "
        "0.75 for DINOv2) (default: off).", rich_help_panel=PANEL_OPTIM),
    wd: float | None = typer.Option(
        None, "--wd", help="Weight decay (default: 1e-4).", rich_help_panel=PANEL_OPTIM),
    warmup_epochs: int | None = typer.Option(
        None, "--warmup-epochs", help="Linear warm-up from 0.01*lr (default: 5).",
        rich_help_panel=PANEL_OPTIM),
    label_smoothing: float | None = typer.Option(
        None, "--label-smoothing", help="ID-loss label smoothing (default: 0 = off).",
        rich_help_panel=PANEL_OPTIM),
    margin: float | None = typer.Option(
        None, "--margin", help="Hinge triplet loss with this margin (e.g. 0.3).",
        rich_help_panel=PANEL_OPTIM),
    soft_margin: bool = typer.Option(
        False, "--soft-margin", help="Soft-margin triplet loss (the default of every "
        "published recipe); overrides a recipe's margin.", rich_help_panel=PANEL_OPTIM),
    sync_bn: bool | None = typer.Option(
        None, "--sync-bn/--no-sync-bn", help="Under DDP on GPUs, BatchNorm layers use the "
        "global batch's statistics (SyncBatchNorm; CUDA only).", rich_help_panel=PANEL_OPTIM),
    unsupervised: bool | None = typer.Option(
        None, "--unsupervised/--supervised", help="Cluster contrast on the train split without "
        "reading its labels: USL from a self-supervised model, UDA from a model fine-tuned "
        "on another dataset (docs/unsupervised.md).", rich_help_panel=PANEL_USL),
    eps: float | None = typer.Option(
        None, "--eps", help="DBSCAN radius on the Jaccard distance (default: 0.6; 0.7 for "
        "MSMT17).", rich_help_panel=PANEL_USL),
    min_samples: int | None = typer.Option(
        None, "--min-samples", help="DBSCAN core size (default: 4).", rich_help_panel=PANEL_USL),
    k1: int | None = typer.Option(
        None, "--k1", help="k-reciprocal neighbours (default: 30).", rich_help_panel=PANEL_USL),
    k2: int | None = typer.Option(
        None, "--k2", help="Local query expansion (default: 6).", rich_help_panel=PANEL_USL),
    memory_momentum: float | None = typer.Option(
        None, "--memory-momentum", help="Weight of the old centroid in the memory update "
        "(default: 0.2).", rich_help_panel=PANEL_USL),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Temperature of the memory's softmax (default: 0.05).",
        rich_help_panel=PANEL_USL),
    memory_update: str | None = typer.Option(
        None, "--memory-update", help="hard (toward each cluster's least similar instance "
        "in the batch) or mean (every instance) (default: hard).", rich_help_panel=PANEL_USL),
    iters: int | None = typer.Option(
        None, "--iters", help="Optimiser steps per epoch (default: 200).",
        rich_help_panel=PANEL_USL),
    eval_every: int | None = typer.Option(
        None, "--eval-every", help="Evaluate on query/gallery every N epochs (default: 0 = "
        "after the last epoch only).", rich_help_panel=PANEL_RUN),
    allow_no_eval: bool | None = typer.Option(
        None, "--allow-no-eval/--no-allow-no-eval", help="Train without evaluation (warned) "
        "when no query has a positive in the gallery (one camera, disjoint ids); without it "
        "such a dataset is refused before the first epoch.", rich_help_panel=PANEL_RUN),
    eval_batch_size: int | None = typer.Option(
        None, "--eval-batch-size", help="Batch size of evaluation (default: 256).",
        rich_help_panel=PANEL_RUN),
    run: RunArgs | None = None,
) -> None:
    """Supervised fine-tuning (ID + triplet loss; TransReID SIE/JPM for ViTs; DINOv2, SOLIDER
    Swin, ResNet BoT) into a run directory; with --unsupervised, cluster contrast on
    unlabelled target images (USL / UDA)."""
    from reidcli.training import finetune as run_finetune
    from reidcli.training.config import resolve_config, resume_config

    if margin is not None and soft_margin:
        raise typer.BadParameter("give either --margin or --soft-margin", param_hint="--margin")
    p_k = parse_batch(batch) if batch is not None else (None, None)
    for typed, from_batch, name in ((ids_per_batch, p_k[0], "--ids-per-batch"),
                                    (images_per_id, p_k[1], "--images-per-id")):
        if typed is not None and from_batch is not None and typed != from_batch:
            raise typer.BadParameter(f"{name} {typed} contradicts --batch {batch}")
    assert run is not None  # given by @run_options
    overrides = recipe_overrides(ctx, skip=(*RunArgs.NOT_FIELDS, "batch", "soft_margin"),
                                 convert={
        "data": ("data", lambda specs: tuple(specs) or None),
        "data_root": ("data_root", str),
        "data_option": ("data_options", lambda pairs: tuple(pairs) or None),
        "eval_data": ("eval_data", lambda specs: tuple(specs) or None),
        "size": ("size", parse_size),
    })
    overrides |= given(
        ids_per_batch=ids_per_batch if ids_per_batch is not None else p_k[0],
        images_per_id=images_per_id if images_per_id is not None else p_k[1],
        soft_margin=True if soft_margin else (False if margin is not None else None),
    )
    overrides["progress"] = not state.quiet
    run_finetune(run.config(resolve_config, resume_config, overrides))
