"""`reid cfs-filter`: option parsing only; the work is `reidcli.selection.cfs_filter`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from reidcli.cli.common import (
    amp_option,
    batch_size_option,
    device_option,
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


def cfs_filter(
    source: str = typer.Option(
        ..., "--source", help="Source images to rank: luperson, luperson:FOLDER or "
        "luperson:LIST.txt (any dataset's train split works).", rich_help_panel=PANEL_DATA),
    target: str | None = typer.Option(
        None, "--target", help="Target dataset (NAME or NAME:PATH) the target proxy is "
        "trained on; not needed with --target-model.", rich_help_panel=PANEL_DATA),
    keep: float | None = typer.Option(
        None, "--keep", help="Keep this top fraction of the source, in (0, 1] (the paper: "
        "0.5).", rich_help_panel=PANEL_DATA),
    keep_count: int | None = typer.Option(
        None, "--keep-count", help="Keep this many top images instead of a fraction.",
        rich_help_panel=PANEL_DATA),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="The list to write: one path per line relative to the "
        "source root, best first (default: cfs_TARGET.txt).", rich_help_panel=PANEL_DATA),
    scores: Path | None = typer.Option(
        None, "--scores", help="HDF5 file of every image's score (resumable; default: "
        "WORKDIR/scores.h5).", rich_help_panel=PANEL_DATA),
    data_root: str | None = typer.Option(
        None, "--data-root", help="Where dataset NAMEs are looked up ($REID_DATA_ROOT, "
        "./data).", rich_help_panel=PANEL_DATA),
    source_option: list[str] | None = typer.Option(
        None, "--source-option", metavar="KEY=VALUE", help="Option of the source dataset, "
        "repeatable (e.g. duplicates=keep to keep repeated list lines).",
        rich_help_panel=PANEL_DATA),
    source_model: Path | None = typer.Option(
        None, "--source-model", help="Run directory of the source proxy theta_s (e.g. a "
        "`reid pretrain` run); trained here if absent.", rich_help_panel=PANEL_PROXY),
    target_model: Path | None = typer.Option(
        None, "--target-model", help="Run directory of the target proxy theta_t (theta_s "
        "adapted to the target); trained here if absent.", rich_help_panel=PANEL_PROXY),
    proxy_epochs: int = typer.Option(
        10, "--proxy-epochs", help="Epochs of each proxy's short schedule.",
        rich_help_panel=PANEL_PROXY),
    proxy_method: str = typer.Option(
        "dino", "--proxy-method", help="Self-supervised method of the proxies: dino, "
        "dino-mim or pass.", rich_help_panel=PANEL_PROXY),
    proxy_sample: int = typer.Option(
        100_000, "--proxy-sample", help="Random source images the source proxy is trained "
        "on.", rich_help_panel=PANEL_PROXY),
    proxy_backbone: str = typer.Option(
        "vit-s", "--proxy-backbone", help="Backbone of the proxies (see `reid pretrain "
        "--backbone`).", rich_help_panel=PANEL_PROXY),
    proxy_size: str = typer.Option(
        "256x128", "--proxy-size", help="Proxy input size HxW (local crops: half).",
        rich_help_panel=PANEL_PROXY),
    proxy_batch_size: int = typer.Option(
        64, "--proxy-batch-size", help="Training batch of the proxies (capped at the "
        "number of images).", rich_help_panel=PANEL_PROXY),
    proxy_init: str | None = typer.Option(
        None, "--proxy-init", help="Starting weights of the source proxy (as `reid pretrain "
        "--init`, e.g. an ImageNet checkpoint).", rich_help_panel=PANEL_PROXY),
    proxy_recipe: Path | None = typer.Option(
        None, "--proxy-recipe", help="`reid pretrain` recipe for the other proxy settings "
        "(lr, heads, crops); the options above take precedence.",
        rich_help_panel=PANEL_PROXY),
    target_supervised: bool | None = typer.Option(
        None, "--target-supervised/--target-self-supervised", help="Train the target proxy "
        "by fine-tuning theta_s on the target's identity labels, or self-supervised with "
        "--proxy-method. Default: supervised when the target has identity labels.",
        show_default=False, rich_help_panel=PANEL_PROXY),
    check_sample: int = typer.Option(
        256, "--check-sample", min=0, help="Target images the self-check scores to see where "
        "they rank among the source (0: no check; needs --target).",
        rich_help_panel=PANEL_RUN),
    batch_size: Annotated[int, batch_size_option(PANEL_RUN, "Scoring batch size.")] = 256,
    workers: Annotated[int, workers_option(PANEL_RUN)] = 4,
    device: Annotated[str, device_option(PANEL_RUN)] = "auto",
    amp: Annotated[str, amp_option(PANEL_RUN)] = "auto",
    seed: int = typer.Option(
        0, "--seed", help="Seed of the proxy sample and proxy training.",
        rich_help_panel=PANEL_RUN),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="Folder for the proxies, their sample and the default "
        "scores file (default: next to the list, LIST_NAME.work/).",
        rich_help_panel=PANEL_RUN),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a --scores file made from other models or "
        "images, or an -o file that is not a list written by cfs-filter.",
        rich_help_panel=PANEL_RUN),
) -> None:
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

    proxy = ProxySettings(
        epochs=proxy_epochs, method=proxy_method, sample=proxy_sample, backbone=proxy_backbone,
        size=parse_size(proxy_size), batch_size=proxy_batch_size, init=proxy_init,
        target_supervised=target_supervised, recipe=proxy_recipe, seed=seed, workers=workers,
        device=device, amp=amp, progress=not state.quiet,
    )
    result = run_cfs_filter(CfsOptions(
        source=source, target=target, output=output or _default_output(target), keep=keep,
        keep_count=keep_count, scores=scores, source_model=source_model,
        target_model=target_model, proxy=proxy, data_root=data_root, workdir=workdir,
        source_options=tuple(source_option or ()),
        batch_size=batch_size, workers=workers, device=device, amp=amp, overwrite=overwrite,
        progress=not state.quiet, check_sample=check_sample,
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
