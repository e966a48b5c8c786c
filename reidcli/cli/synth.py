"""`reid synth`: write the procedural synthetic datasets (option parsing only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from reidcli.cli.common import ReidGroup, parse_size, state
from reidcli.data.synth import (
    MarketConfig,
    UnlabeledConfig,
    write_market,
    write_unlabeled,
)
from reidcli.utils.logging import console

app = typer.Typer(
    cls=ReidGroup,
    help="Write synthetic person datasets (procedural, deterministic by --seed).",
    no_args_is_help=True,
)

SIZE_HELP = "Image size HxW of the target cameras."
STRENGTH_HELP = "Scale of the camera styles: 0 = all cameras alike, 1 = default, >1 = strong bias."
WORKERS_HELP = "Worker processes (the output is identical for any number)."
S = TypeVar("S")
OVERWRITE_HELP = "Replace OUT if it exists and is not empty."


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None] | None]:
    if state.quiet:
        yield None
        return
    columns = (TextColumn("writing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("synth", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _write(writer: Callable[..., S], out: Path, cfg: object, overwrite: bool, workers: int
           ) -> S:
    with _progress() as progress:
        return writer(out, cfg, overwrite=overwrite, workers=workers, progress=progress)


def _report(lines: list[str]) -> None:
    if not state.quiet:
        for line in lines:
            console.print(line, highlight=False)


@app.command("market")
def market(
    out: Path = typer.Argument(..., help="Output folder (Market-1501 layout)."),
    ids: int = typer.Option(100, "--ids", help="Identities in total (train + test)."),
    cams: int = typer.Option(6, "--cams", help="Cameras (2-9)."),
    seed: int = typer.Option(0, "--seed", help="Seed: same seed, same bytes."),
    size: str = typer.Option("128x64", "--size", help=SIZE_HELP),
    train_ids: int | None = typer.Option(
        None, "--train-ids", help="Identities in the train split (default: half of --ids)."),
    per_cam: int = typer.Option(4, "--per-cam", help="Images per identity and camera."),
    distractors: int | None = typer.Option(
        None, "--distractors", help="0000_ distractor images (default: 10% of the gallery)."),
    junk: int | None = typer.Option(
        None, "--junk", help="-1_ junk images (default: 5% of the gallery)."),
    occlusion: float = typer.Option(0.0, "--occlusion", help="Probability of an occluder."),
    camera_strength: float = typer.Option(1.0, "--camera-strength", help=STRENGTH_HELP),
    twins: float = typer.Option(
        0.15, "--twins", help="Share of identities that are near twins of an earlier one."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Labelled dataset: bounding_box_train/, query/, bounding_box_test/ with Market names."""
    cfg = MarketConfig(
        ids=ids, cams=cams, seed=seed, size=parse_size(size), train_ids=train_ids,
        per_cam=per_cam, distractors=distractors, junk=junk, occlusion=occlusion,
        camera_strength=camera_strength, twins=twins,
    )
    s = _write(write_market, out, cfg, overwrite, workers)
    _report([
        f"wrote {s.images} images to {s.root} in {s.seconds:.1f}s ({s.cams} cameras)",
        f"  train:   {s.train_ids} ids, {s.train_images} images",
        f"  query:   {s.query_ids} ids, {s.query_images} images",
        f"  gallery: {s.gallery_ids} ids, {s.gallery_images} images "
        f"(incl. {s.distractors} distractors 0000, {s.junk} junk -1)",
    ])


@app.command("unlabeled")
def unlabeled(
    out: Path = typer.Argument(..., help="Output folder (LUPerson-style, nested folders)."),
    images: int = typer.Option(1000, "--images", help="Images in total."),
    target_like: float = typer.Option(
        0.3, "--target-like", help="Fraction of images in the style of the target cameras."),
    target_cams: int = typer.Option(
        6, "--target-cams", help="Target cameras (as `synth market --cams`)."),
    seed: int = typer.Option(0, "--seed", help="Seed; use the target dataset's seed."),
    size: str = typer.Option("128x64", "--size", help=SIZE_HELP),
    camera_strength: float = typer.Option(1.0, "--camera-strength", help=STRENGTH_HELP),
    occlusion: float = typer.Option(0.0, "--occlusion", help="Probability of an occluder."),
    empty: float = typer.Option(
        0.1, "--empty", help="Fraction of the foreign images that show no person."),
    domains: int = typer.Option(4, "--domains", help="Foreign domains to draw from."),
    per_video: int = typer.Option(24, "--per-video", help="Images per video folder."),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Unlabelled mixed-domain crops in per-video folders, plus manifest.csv of domains."""
    cfg = UnlabeledConfig(
        images=images, target_like=target_like, target_cams=target_cams, seed=seed,
        size=parse_size(size), camera_strength=camera_strength, occlusion=occlusion,
        empty=empty, domains=domains, per_video=per_video,
    )
    s = _write(write_unlabeled, out, cfg, overwrite, workers)
    _report([
        f"wrote {s.images} images in {s.videos} video folders to {s.root} in {s.seconds:.1f}s",
        f"  target-like: {s.target_like}, foreign: {s.foreign} ({s.empty} without a person)",
        f"  domains per image: {s.root / 'manifest.csv'}",
    ])
