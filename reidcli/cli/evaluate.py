"""`reid evaluate`: CMC / mAP / mINP of a feature bank or a distance file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import typer

from reidcli.cli.common import typed
from reidcli.cli.retrieval_options import RetrievalArgs, retrieval_options
from reidcli.retrieval.evaluate import EvalOptions, evaluate_path
from reidcli.retrieval.pipeline import Retrieval
from reidcli.retrieval.report import (
    camera_table,
    json_output,
    result_json,
    result_table,
    write_json,
)
from reidcli.utils.logging import console, stdout_console
from reidcli.utils.outputs import claim_output

log = logging.getLogger(__name__)


def _check_level(value: float | None) -> float | None:
    if value is not None and not 0.0 < value < 1.0:
        raise typer.BadParameter(f"a confidence level is between 0 and 1, got {value}")
    return value


def warn_unused_rerank_options(ctx: typer.Context, rerank: bool) -> None:
    """--k1/--k2/--lambda typed without --rerank do nothing: say so rather than ignore them."""
    flags = [f"--{name}" for name in typed(ctx, {"lam": "lambda"})
             if name in ("k1", "k2", "lambda")]
    if flags and not rerank:
        log.warning("%s only apply with --rerank: ignored (add --rerank to re-rank)",
                    ", ".join(flags))


@retrieval_options
def evaluate(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ..., help="Feature bank (.h5) or distance file written by `reid rerank`."),
    max_rank: int = typer.Option(50, "--max-rank", min=1, help="Length of the CMC curve."),
    json_out: str | None = typer.Option(None, "--json", metavar="PATH",
                                        help="Also write the results as JSON ('-' = stdout)."),
    per_camera: bool = typer.Option(False, "--per-camera", help="Breakdown by query camera."),
    ci: float | None = typer.Option(None, "--ci", callback=_check_level,
                                    help="Bootstrap confidence level over queries, e.g. 0.95."),
    ci_samples: int = typer.Option(1000, "--ci-samples", min=10, help="Bootstrap resamples."),
    rerank: bool = typer.Option(False, "--rerank", help="Exact k-reciprocal re-ranking first."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Let --json replace a file that does not hold "
                                        "evaluation results."),
    args: RetrievalArgs | None = None,
) -> None:
    """Market-1501 protocol: mAP, mINP and CMC of a bank's query split against its gallery."""
    warn_unused_rerank_options(ctx, rerank)
    assert args is not None  # given by @retrieval_options
    retrieval, device = args.retrieval(rerank), args.torch_device
    to_file = json_out is not None and json_out != "-"
    # Claimed before the work so that a bad --json fails at once, not after evaluating.
    with (claim_output(json_output(json_out, source, overwrite)) if to_file  # type: ignore[arg-type]
          else contextlib.nullcontext()):
        _evaluate(source, retrieval, json_out, query_split=args.query_split,
                  gallery_split=args.gallery_split, device=device,
                  options=EvalOptions(max_rank=max_rank, per_camera=per_camera, ci=ci,
                                      ci_samples=ci_samples, budget=args.budget))


def _evaluate(source: Path, retrieval: Retrieval, json_out: str | None, *, query_split: str,
              gallery_split: str, device: str, options: EvalOptions) -> None:
    result = evaluate_path(source, retrieval, query_split=query_split,
                           gallery_split=gallery_split, device=device, options=options)
    # With `--json -` stdout carries only the JSON; the tables go to stderr.
    out = console if json_out == "-" else stdout_console
    out.print(result_table(result))
    if options.per_camera:
        out.print(camera_table(result))
    if json_out == "-":
        stdout_console.print(result_json(result), markup=False, highlight=False, soft_wrap=True)
    elif json_out:
        write_json(result, json_out)
