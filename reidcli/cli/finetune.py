"""`reid finetune`: option parsing only; the work is `reidcli.training.finetune`.

Every option defaults to None so that we know which ones the user typed: those (read from
the click context by `recipe_overrides`, by config field name) override
the recipe (`--recipe`), which overrides the built-in defaults (TransReID ViT-B).
"""

from __future__ import annotations

from pathlib import Path

import typer

from reidcli.cli.common import given, parse_size, recipe_options, recipe_overrides, state
from reidcli.cli.run_options import Panel, RunArgs, run_options


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
DEFAULTS: dict[str, object] = {"size": (256, 128), "backbone": "vit-b", "sie_coef": 3.0,
    "jpm_shuffle": 2, "jpm_groups": 4, "neck_feat": "before", "part_tokens": 0, "epochs": 120,
    "lr": 0.008, "optimizer": "sgd", "warmup_epochs": 5, "min_samples": 4, "k1": 30, "k2": 6,
    "memory_momentum": 0.2, "temperature": 0.05, "memory_update": "hard", "iters": 200,
    "eval_batch_size": 256, "stem": "patch", "drop_path": 0.1, "workers": 8, "seed": 1234,
    "device": "auto"}


_recipe_options = recipe_options(DEFAULTS, {
    Panel.DATA: {
        "data": (list[str], "--data NAME[:PATH]", "Dataset NAME or NAME:PATH (see `reid "
            "datasets`); repeat it to train on several jointly (ids and cameras get one range "
            "per dataset)."),
        "data_balance": (bool, "Joint training: every batch gives each dataset an equal share "
            "of its identities (default: shares follow the image counts)."),
        "data_root": (Path, "Folder holding the datasets (default: $REID_DATA_ROOT)."),
        "data_option": (list[str], "--data-option -O [NAME.]KEY=VALUE", "Dataset option, "
            "repeatable (e.g. -O 'pattern=id(?P<pid>\\d+)_cam(?P<cam>\\d+)' -O cam_base=0 for "
            "`folder`). KEY=VALUE applies to every --data; NAME.KEY=VALUE (or N.KEY=VALUE, the "
            "N-th --data) to one, and to an --eval-data of that name."),
        "eval_data": (list[str], "--eval-data NAME[:PATH]", "Evaluate on this dataset's "
            "query/gallery; repeatable (default: every --data with query/gallery). The first "
            "one's mAP selects best/."),
        "size": "Input size HxW",
    },
    # In --help the panels come in the order they are first met.
    Panel.OPTIM: {
        "batch": (str, "Batch as PxK: P identities x K images (default: 16x4)."),
        "ids_per_batch": (int, "P of the PK batch."),
        "images_per_id": (int, "K of the PK batch."),
        "margin": (float, "Hinge triplet loss with this margin (e.g. 0.3)."),
        "soft_margin": (bool, typer.Option(False, "--soft-margin", help="Soft-margin triplet "
            "loss (the default of every published recipe); overrides a recipe's margin.")),
        "epochs": "Training epochs",
        "lr": "Base learning rate (biases x2)",
        "optimizer": "sgd (momentum 0.9), adam or adamw",
        "lr_decay": (float, "Layer-wise lr decay in (0, 1] for full fine-tuning (e.g. 0.75 for "
            "DINOv2) (default: off)."),
        "wd": (float, "Weight decay (default: 1e-4)."),
        "warmup_epochs": "Linear warm-up from 0.01*lr",
        "label_smoothing": (float, "ID-loss label smoothing (default: 0 = off)."),
        "sync_bn": (bool, "Under DDP on GPUs, BatchNorm layers use the global batch's "
            "statistics (SyncBatchNorm; CUDA only)."),
    },
    Panel.MODEL: {
        "backbone": "ViT: vit-b, vit-s, vit-t, deit-s, deit-b; DINOv2: dinov2-s/b/l/g (+ -reg "
            "for 4 registers); SOLIDER Swin: swin-t/s/b; BoT: resnet50; tests/demos: "
            "vit-small-demo, *-tiny-test (see docs/backbones.md)",
        "stride": (int, "Patch-embedding stride of ViT backbones: 16, 12 or 11 (default: the "
            "patch size, 16; DINOv2 14)."),
        "sie": (bool, "Side information embedding of the camera."),
        "sie_view": (bool, "SIE of the viewpoint (vehicles)."),
        "sie_coef": "SIE weight lambda",
        "jpm": (bool, "Jigsaw patch module (local branches)."),
        "jpm_shift": (int, "JPM shift (default: 5; 8 for vehicles)."),
        "jpm_shuffle": "JPM shuffle groups",
        "jpm_groups": "JPM local branches",
        "jpm_exact_shift": (bool, "--jpm-exact-shift/--jpm-reference-shift", "Rotate by exactly "
            "--jpm-shift tokens (the paper) instead of shift-1 (the reference code) (default: "
            "reference)."),
        "neck_feat": "Test feature before or after the BNNeck",
        "part_tokens": "PASS part tokens (3 for PASS checkpoints)",
        "semantic_weight": (float, "SOLIDER's semantic weight lambda in [0, 1] (Swin "
            "backbones) (default: 0.2)."),
        "freeze_backbone": (bool, "Linear probe: train only the BNNeck and classifier on a "
            "frozen backbone (DINOv2 recipe)."),
        "pretrained": (str, "Initial weights: a checkpoint file (timm/ImageNet, DINO, iBOT, "
            "PASS, DINOv2 (timm or Meta), SOLIDER, torchvision ResNet, a reid run) or `timm`."),
    },
    Panel.USL: {
        "unsupervised": (bool, "--unsupervised/--supervised", "Cluster contrast on the train "
            "split without reading its labels: USL from a self-supervised model, UDA from a "
            "model fine-tuned on another dataset (docs/unsupervised.md)."),
        "eps": (float, "DBSCAN radius on the Jaccard distance (default: 0.6; 0.7 for MSMT17)."),
        "min_samples": "DBSCAN core size",
        "k1": "k-reciprocal neighbours",
        "k2": "Local query expansion",
        "memory_momentum": "Weight of the old centroid in the memory update",
        "temperature": "Temperature of the memory's softmax",
        "memory_update": "hard (toward each cluster's least similar instance in the batch) or "
            "mean (every instance)",
        "iters": "Optimiser steps per epoch",
        "camera_norm": (bool, "Cluster each image's feature minus its camera's mean feature, so "
            "that clusters follow identities rather than cameras (needs camera ids; not in the "
            "reference) (default: off)."),
    },
    Panel.RUN: {
        "eval_every": (int, "Evaluate on query/gallery every N epochs (default: 0 = after the "
            "last epoch only)."),
        "allow_no_eval": (bool, "Train without evaluation (warned) when no query has a "
            "positive in the gallery (one camera, disjoint ids); without it such a dataset is "
            "refused before the first epoch."),
        "eval_batch_size": "Batch size of evaluation",
    },
})


@run_options(DEFAULTS)
@_recipe_options
def finetune(ctx: typer.Context, run: RunArgs | None = None) -> None:
    """Supervised fine-tuning (ID + triplet loss; TransReID SIE/JPM for ViTs; DINOv2, SOLIDER
    Swin, ResNet BoT) into a run directory; with --unsupervised, cluster contrast on
    unlabelled target images (USL / UDA)."""
    from reidcli.training import finetune as run_finetune
    from reidcli.training.config import resolve_config, resume_config

    opt = ctx.params
    margin, batch = opt["margin"], opt["batch"]
    if margin is not None and opt["soft_margin"]:
        raise typer.BadParameter("give either --margin or --soft-margin", param_hint="--margin")
    p_k = parse_batch(batch) if batch is not None else (None, None)
    ids_per_batch, images_per_id = opt["ids_per_batch"], opt["images_per_id"]
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
        soft_margin=True if opt["soft_margin"] else (False if margin is not None else None),
    )
    overrides["progress"] = not state.quiet
    run_finetune(run.config(resolve_config, resume_config, overrides))
