"""`reid visualize`: option parsing only; the work is `reidcli.visualize.render_ranklist`."""

from __future__ import annotations

from pathlib import Path

import typer

from reidcli.cli.common import (
    GallerySplitOpt,
    MetricName,
    MetricOpt,
    QuerySplitOpt,
    parse_size,
    state,
)
from reidcli.retrieval.pipeline import Retrieval
from reidcli.utils.logging import console
from reidcli.visualize.draw import TileStyle
from reidcli.visualize.ranklist import RankOptions, parse_queries, render_ranklist, summary_line


def visualize(
    source: Path = typer.Argument(
        ..., help="Feature bank (.h5) or distance file written by `reid rerank`."),
    output: Path = typer.Option(Path("ranks.png"), "-o", "--output", help="PNG to write."),
    queries: str = typer.Option(
        "8", "--queries", "-n", metavar="N|IDS",
        help="N = the first N queries; a comma list (3,17,42 or 17,) = those query indices "
             "(0-based)."),
    k: int = typer.Option(10, "-k", "--top", min=1, help="Matches shown per query."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder the image paths in SOURCE are relative to."),
    metric: MetricOpt = MetricName.cosine,
    tile: str = typer.Option("128x64", "--tile", help="Size HxW of every tile."),
    query_split: QuerySplitOpt = "query",
    gallery_split: GallerySplitOpt = "gallery",
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an -o file that `reid visualize` did not "
                                        "draw."),
) -> None:
    """Draw ranked lists: each query, then its top-k gallery images framed green (correct),
    red (incorrect), orange (same camera, ignored) or grey (junk, ignored), distance below."""
    result = render_ranklist(RankOptions(
        source=source, output=output, queries=parse_queries(queries), k=k,
        image_root=image_root, retrieval=Retrieval(metric=metric.value),  # type: ignore[arg-type]
        query_split=query_split, gallery_split=gallery_split,
        style=TileStyle(tile=parse_size(tile)), overwrite=overwrite,
    ))
    if not state.quiet:
        console.print(summary_line(result), highlight=False)
