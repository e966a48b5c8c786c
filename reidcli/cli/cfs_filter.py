"""`reid cfs-filter`: option parsing only; the work is `reidcli.selection.cfs_filter`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.markup import escape

from reidcli.cli.common import (
    amp_option,
    batch_size_option,
    device_option,
    option_table,
    parse_size,
    state,
    workers_option,
)
from reidcli.utils.logging import console

PANEL_DATA = "Data and selection"
PANEL_PROXY = "Proxies (trained here unless given)"
PANEL_RUN = "Run"


def _default_output(target: str | None) -> Path:
    name = target.partition(":")[0].strip() if target else ""
    return Path(f"cfs_{name}.txt" if name else "cfs.txt")


# The defaults of the options that have one (the rest default to None).
DEFAULTS: dict[str, object] = {
    "source": ..., "proxy_epochs": 10, "proxy_method": "dino", "proxy_sample": 100_000,
    "proxy_backbone": "vit-s", "proxy_size": "256x128", "proxy_batch_size": 64, "seed": 0,
    "overwrite": False}

_options = option_table({
    PANEL_DATA: {
        "source": (str, "Source images to rank: luperson, luperson:FOLDER or luperson:LIST.txt "
            "(any dataset's train split works)."),
        "target": (str, "Target dataset (NAME or NAME:PATH) the target proxy is trained on; not "
            "needed with --target-model."),
        "keep": (float, "Keep this top fraction of the source, in (0, 1] (the paper: 0.5)."),
        "keep_count": (int, "Keep this many top images instead of a fraction."),
        "output": (Path, "-o --output", "The list to write: one path per line relative to the "
            "source root, best first (default: cfs_TARGET.txt)."),
        "scores": (Path, "HDF5 file of every image's score (resumable; default: "
            "WORKDIR/scores.h5)."),
        "data_root": (str, "Where dataset NAMEs are looked up ($REID_DATA_ROOT, ./data)."),
        "source_option": (list[str], "--source-option KEY=VALUE", "Option of the source "
            "dataset, repeatable (e.g. duplicates=keep to keep repeated list lines)."),
    },
    PANEL_PROXY: {
        "source_model": (Path, "Run directory of the source proxy theta_s (e.g. a `reid "
            "pretrain` run); trained here if absent."),
        "target_model": (Path, "Run directory of the target proxy theta_t (theta_s adapted to "
            "the target); trained here if absent."),
        "proxy_epochs": "Epochs of each proxy's short schedule.",
        "proxy_method": "Self-supervised method of the proxies: dino, dino-mim or pass.",
        "proxy_sample": "Random source images the source proxy is trained on.",
        "proxy_backbone": "Backbone of the proxies (see `reid pretrain --backbone`).",
        "proxy_size": "Proxy input size HxW (local crops: half).",
        "proxy_batch_size": "Training batch of the proxies (capped at the number of images).",
        "proxy_init": (str, "Starting weights of the source proxy (as `reid pretrain --init`, "
            "e.g. an ImageNet checkpoint)."),
        "proxy_recipe": (Path, "`reid pretrain` recipe for the other proxy settings (lr, heads, "
            "crops); the options above take precedence."),
        "target_supervised": (bool | None, typer.Option(
            None, "--target-supervised/--target-self-supervised", show_default=False,
            help="Train the target proxy by fine-tuning theta_s on the target's identity "
            "labels, or self-supervised with --proxy-method. Default: supervised when the "
            "target has identity labels.")),
    },
    PANEL_RUN: {
        "check_sample": (int, typer.Option(256, "--check-sample", min=0, help="Target images "
            "the self-check scores to see where they rank among the source (0: no check; needs "
            "--target).")),
        "batch_size": (Annotated[int, batch_size_option(PANEL_RUN, "Scoring batch size.")], 256),
        "workers": (Annotated[int, workers_option(PANEL_RUN)], 4),
        "device": (Annotated[str, device_option(PANEL_RUN)], "auto"),
        "amp": (Annotated[str, amp_option(PANEL_RUN)], "auto"),
        "seed": (int, "Seed of the proxy sample and proxy training."),
        "workdir": (Path, "Folder for the proxies, their sample and the default scores file "
            "(default: next to the list, LIST_NAME.work/)."),
        "overwrite": (bool, "--overwrite", "Replace a --scores file made from other models or "
            "images, or an -o file that is not a list written by cfs-filter."),
    },
}, DEFAULTS, target="opt", build=SimpleNamespace)


@_options
def cfs_filter(opt: SimpleNamespace | None = None) -> None:
    """Rank source images by catastrophic forgetting score (how close the source and target
    proxies' features stay) and write the best ones as an ordered list for `reid pretrain
    --subset`.

    Re-running skips finished work: trained proxies are reused, a complete scores file is
    not rescored (changing --keep costs seconds), an interrupted scoring pass resumes.
    Under `torchrun` each rank scores a shard; rank 0 merges them and writes the list.
    """
    from reidcli.selection import cfs_filter as run_cfs_filter
    from reidcli.selection.pipeline import CfsOptions
    from reidcli.selection.proxies import ProxySettings

    assert opt is not None  # given by @_options
    proxy = ProxySettings(
        epochs=opt.proxy_epochs, method=opt.proxy_method, sample=opt.proxy_sample,
        backbone=opt.proxy_backbone, size=parse_size(opt.proxy_size),
        batch_size=opt.proxy_batch_size, init=opt.proxy_init,
        target_supervised=opt.target_supervised, recipe=opt.proxy_recipe, seed=opt.seed,
        workers=opt.workers, device=opt.device, amp=opt.amp, progress=not state.quiet,
    )
    result = run_cfs_filter(CfsOptions(
        source=opt.source, target=opt.target, output=opt.output or _default_output(opt.target),
        keep=opt.keep, keep_count=opt.keep_count, scores=opt.scores, source_model=opt.source_model,
        target_model=opt.target_model, proxy=proxy, data_root=opt.data_root, workdir=opt.workdir,
        source_options=tuple(opt.source_option or ()), batch_size=opt.batch_size,
        workers=opt.workers, device=opt.device, amp=opt.amp, overwrite=opt.overwrite,
        progress=not state.quiet, check_sample=opt.check_sample,
    ))
    if result is None:  # a non-zero torchrun rank: rank 0 reports
        return
    how = ("already scored" if result.scoring.skipped
           else f"{result.scoring.images_per_second:,.0f} img/s")
    console.print(
        f"kept {result.kept:,} of {result.total:,} images (score >= {result.cutoff:.4f}; "
        f"mean {result.mean_kept:.4f} kept, {result.mean_all:.4f} all) -> {result.list_path}\n"
        f"scores: {result.scores_path} ({how})"
    )
    if result.check is not None:
        style = "red" if result.check.inverted else "green"
        console.print(f"self-check: [{style}]{escape(result.check.summary())}[/]",
                      highlight=False)
