"""`reid rerank`: exact k-reciprocal re-ranking of a bank into a distance file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from reidcli.cli.common import (
    ChunkMbOpt,
    DbaOpt,
    DeviceOpt,
    GallerySplitOpt,
    K1Opt,
    K2Opt,
    LambdaOpt,
    MetricName,
    MetricOpt,
    QeOpt,
    QuerySplitOpt,
    check_device,
)
from reidcli.cli.evaluate import retrieval_of
from reidcli.retrieval.export import rerank_bank

log = logging.getLogger(__name__)


def rerank(
    bank: Path = typer.Argument(..., help="Feature bank (.h5) with query and gallery splits."),
    output: Path = typer.Option(..., "-o", "--output", help="Distance file to write (.h5)."),
    k1: K1Opt = 20,
    k2: K2Opt = 6,
    lam: LambdaOpt = 0.3,
    metric: MetricOpt = MetricName.cosine,
    qe: QeOpt = 0,
    dba: DbaOpt = 0,
    query_split: QuerySplitOpt = "query",
    gallery_split: GallerySplitOpt = "gallery",
    device: DeviceOpt = "auto",
    chunk_mb: ChunkMbOpt = 128,
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing -o file that is not a distance "
                                        "file (a distance file is always replaced)."),
) -> None:
    """Re-rank every query against every gallery item (unlabelled ones included)."""
    retrieval = retrieval_of(metric, qe, dba, True, k1, k2, lam)
    start = time.perf_counter()
    path = rerank_bank(bank, output, retrieval, query_split=query_split,
                       gallery_split=gallery_split, device=check_device(device),
                       budget=chunk_mb * 2**20, overwrite=overwrite)
    log.info("wrote %s in %.1f s", path, time.perf_counter() - start)
