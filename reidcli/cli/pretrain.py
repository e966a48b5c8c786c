"""`reid pretrain`: option parsing only; the work is `reidcli.ssl.pretrain`.

Every option defaults to None so that we know which ones the user typed: those (read from
the click context by `recipe_overrides`, by config field name) override
the recipe (`--recipe`), which overrides the built-in defaults (DINO as TransReID-SSL).
"""

from __future__ import annotations

import typer

from reidcli.cli.common import parse_size, recipe_options, recipe_overrides, state
from reidcli.cli.run_options import Panel, RunArgs, run_options

# The built-in defaults the help quotes (tests/test_cli_options.py: PretrainConfig's).
DEFAULTS: dict[str, object] = {
    "method": "dino", "local_size": (128, 64), "local_crops": 8, "lambda_cls": 1.0,
    "lambda_mim": 1.0, "parts": 3, "part_crops": 3, "teacher_temp": 0.04,
    "warmup_teacher_temp_epochs": 0, "backbone": "vit-s", "stem": "patch", "drop_path": 0.1,
    "epochs": 100, "batch_size": 512, "lr": 5e-4, "min_lr": 1e-6, "warmup_epochs": 10,
    "momentum_teacher": 0.996, "export_every": 1, "workers": 8, "seed": 0, "device": "auto"}

_recipe_options = recipe_options(DEFAULTS, {
    Panel.METHOD: {
        "method": "dino, dino-mim (PersonViT/iBOT) or pass",
        "lambda_cls": "dino-mim: weight of the [CLS] loss",
        "lambda_mim": "dino-mim: weight of the patch loss",
        "parts": "pass: part regions / [PART] tokens L",
        "part_crops": "pass: local crops per region J",
        "teacher_temp": "Teacher temperature",
        "warmup_teacher_temp_epochs": "Epochs warming the teacher temperature up from 0.04",
    },
    Panel.DATA: {
        "data": (str, "Unlabelled images: luperson:FOLDER or luperson:LIST.txt (one relative "
                 "path per line, the fast path at LUPerson scale)."),
        "data_root": (str, "Folder holding the datasets (default: $REID_DATA_ROOT)."),
        "subset": (str, "Ordered image list to use (e.g. from `reid cfs-filter`)."),
        "keep": (float, "Keep this leading fraction of the list (e.g. 0.5)."),
        "data_option": (list[str], "--data-option -O", "Dataset option KEY=VALUE, repeatable "
                        "(e.g. -O duplicates=keep to keep repeated list lines)."),
        "size": (str, "Global crop size HxW (default: 256x128)."),
        "local_size": "Local crop size HxW",
        "local_crops": "Local crops per image, dino/dino-mim",
        "person_crops": (bool, "--person-crops/--square-crops", "Crop aspect (w/h) 0.4-0.6, "
                         "person-shaped (SOLIDER), instead of DINO's 3/4-4/3."),
    },
    Panel.MODEL: {
        "backbone": "ViT-family backbones only (Swin and ResNet cannot be pre-trained here): "
                    "vit-s, vit-b, vit-t, deit-s, deit-b, dinov2-s/b/l/g (not -reg with pass), "
                    "vit-small-demo, vit-tiny-test",
        "stride": (int, "Patch-embedding stride (default: the patch size, 16; DINOv2 14)."),
        "init": (str, "Start from these weights (ImageNet/timm file, DINO/iBOT/PASS "
                 "checkpoint, a reid run directory)."),
        "out_dim": (int, "Head prototypes K (default: 65536; 8192 for dino-mim)."),
    },
    Panel.OPTIM: {
        "epochs": "Epochs",
        "batch_size": "Global batch size, all processes",
        "lr": "Peak lr per 256 images, scaled by batch/256",
        "min_lr": "Final lr of the cosine",
        "warmup_epochs": "Linear lr warm-up epochs",
        "momentum_teacher": "Initial teacher EMA momentum, cosine to 1",
    },
    Panel.RUN: {
        "export_every": "Export the teacher every N epochs",
        "checkpoint_every": (int, "Also write trainer.pt every N iterations (default: 0 = "
                             "epoch ends only)."),
        "max_iters": (int, "Stop after N iterations of the schedule (resumable)."),
    },
})


@run_options(DEFAULTS)
@_recipe_options
def pretrain(ctx: typer.Context, run: RunArgs | None = None) -> None:
    """Self-supervised pre-training of a ViT on unlabelled person images (DINO, DINO+MIM,
    PASS); the teacher is exported as model.safetensors for `reid finetune --pretrained`."""
    from reidcli.ssl import pretrain as run_pretrain
    from reidcli.ssl.config import resolve_config, resume_config

    assert run is not None  # given by @run_options
    overrides = recipe_overrides(ctx, skip=RunArgs.NOT_FIELDS, convert={
        "size": ("global_size", parse_size),
        "local_size": ("local_size", parse_size),
        "person_crops": ("crop_aspect", lambda on: (0.4, 0.6) if on else (3 / 4, 4 / 3)),
        "data_option": ("data_options", lambda pairs: tuple(pairs) or None),
    })
    overrides |= {"progress": not state.quiet, "output": str(run.output), "resume": run.resume}
    run_pretrain(run.config(resolve_config, resume_config, overrides))
