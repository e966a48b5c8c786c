"""`reid search`: option parsing only; the work is `reidcli.deploy.search.search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import batch_size_option, device_option, state, workers_option
from reidcli.deploy.search import SearchOptions, result_table
from reidcli.deploy.search import search as run_search
from reidcli.utils.logging import console


def search(
    queries: Path = typer.Argument(..., help="A query image or a folder of them."),
    gallery: Path = typer.Option(..., "--gallery", "-g", help="Gallery folder (extracted "
                                 "once into a bank, reused after) or a bank (.h5)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="Run directory."),
    onnx: Path | None = typer.Option(None, "--onnx", help="Instead of -c: a graph written by "
                                     "`reid export`."),
    k: int = typer.Option(20, "-k", "--top", min=1, help="Matches per query."),
    rerank: bool = typer.Option(False, "--rerank", help="k-reciprocal re-ranking (k1=20, "
                                "k2=6, lambda=0.3) over queries and gallery."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the ranked lists "
                                          "(paths, distances) as JSON."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Draw the ranked lists into this PNG."),
    save_bank: Path | None = typer.Option(None, "--save-bank", help="Where a gallery folder's "
                                          "bank goes (default: next to -o/--json, else here)."),
    gallery_split: str | None = typer.Option(None, "--gallery-split", help="Split of a "
                                             "gallery bank (default: its only one, else "
                                             "`gallery`)."),
    cam_regex: str | None = typer.Option(None, "--cam-regex", help="Regex with a named group "
                                         "`cam` (1-based camera number) in file names, as "
                                         "`extract --images`."),
    flip: bool = typer.Option(False, "--flip/--no-flip", help="Flip averaging for queries "
                              "and gallery (a graph exported with --flip always has it)."),
    device: Annotated[str, device_option()] = "auto",
    batch_size: Annotated[int, batch_size_option()] = 64,
    workers: Annotated[int, workers_option(help="DataLoader workers for gallery "
                                           "extraction.")] = 0,
    shown: int = typer.Option(5, "--show", min=0, help="Matches per query in the table."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json or "
                                   "-o file that reid search did not write."),
) -> None:
    """Rank an unlabelled gallery for each query image, nearest first (cosine distance)."""
    result = run_search(SearchOptions(
        queries=queries, gallery=gallery, checkpoint=checkpoint, onnx=onnx, k=k,
        rerank=rerank, json=json_path, picture=output, save_bank=save_bank,
        gallery_split=gallery_split, cam_regex=cam_regex, flip=flip, device=device,
        batch_size=batch_size, workers=workers, progress=not state.quiet,
        overwrite=overwrite))
    if state.quiet:
        return
    if shown:
        console.print(result_table(result, shown))
    how = "reused" if result.bank_reused else "wrote"
    console.print(f"{how} gallery bank {result.bank}", highlight=False)
    for path in (result.json, result.picture):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)
