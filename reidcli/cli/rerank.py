"""`reid rerank`: exact k-reciprocal re-ranking of a bank into a distance file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from reidcli.cli.retrieval_options import RetrievalArgs, retrieval_options
from reidcli.retrieval.export import rerank_bank

log = logging.getLogger(__name__)


@retrieval_options
def rerank(
    bank: Path = typer.Argument(..., help="Feature bank (.h5) with query and gallery splits."),
    output: Path = typer.Option(..., "-o", "--output", help="Distance file to write (.h5)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing -o file that is not a distance "
                                        "file (a distance file is always replaced)."),
    args: RetrievalArgs | None = None,
) -> None:
    """Re-rank every query against every gallery item (unlabelled ones included)."""
    assert args is not None  # given by @retrieval_options
    start = time.perf_counter()
    path = rerank_bank(bank, output, args.retrieval(rerank=True), query_split=args.query_split,
                       gallery_split=args.gallery_split, device=args.torch_device,
                       budget=args.budget, overwrite=overwrite)
    log.info("wrote %s in %.1f s", path, time.perf_counter() - start)
