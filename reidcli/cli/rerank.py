"""`reid rerank`: exact k-reciprocal re-ranking of a bank into a distance file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from reidcli.cli.evaluate import MetricName, check_device, rerank_params
from reidcli.retrieval.export import rerank_bank

log = logging.getLogger(__name__)


def rerank(
    bank: Path = typer.Argument(..., help="Feature bank (.h5) with query and gallery splits."),
    output: Path = typer.Option(..., "-o", "--output", help="Distance file to write (.h5)."),
    k1: int = typer.Option(20, "--k1", help="k-reciprocal neighbourhood size."),
    k2: int = typer.Option(6, "--k2", help="Local query expansion size (1 = off)."),
    lam: float = typer.Option(0.3, "--lambda", help="Weight of the original distance."),
    metric: MetricName = typer.Option(MetricName.cosine, "--metric",
                               help="cosine: squared euclidean on L2-normalised features; "
                                    "euclidean: squared euclidean on raw features."),
    qe: int = typer.Option(0, "--qe", min=0, metavar="K", help="Average query expansion, top K."),
    dba: int = typer.Option(0, "--dba", min=0, metavar="K",
                            help="Database-side augmentation, top K."),
    query_split: str = typer.Option("query", "--query-split", help="Bank split of the queries."),
    gallery_split: str = typer.Option("gallery", "--gallery-split",
                                      help="Bank split of the gallery."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    chunk_mb: int = typer.Option(128, "--chunk-mb", min=8,
                                 help="Memory budget of one block of distances (MiB)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing -o file that is not a distance "
                                        "file (a distance file is always replaced)."),
) -> None:
    """Re-rank every query against every gallery item (unlabelled ones included)."""
    params = rerank_params(k1, k2, lam)
    start = time.perf_counter()
    path = rerank_bank(bank, output, params, metric=metric.value, qe=qe, dba=dba,  # type: ignore[arg-type]
                       query_split=query_split, gallery_split=gallery_split,
                       device=check_device(device), budget=chunk_mb * 2**20,
                       overwrite=overwrite)
    log.info("wrote %s in %.1f s", path, time.perf_counter() - start)
