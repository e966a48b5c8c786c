"""`reid evaluate`: CMC / mAP / mINP of a feature bank or a distance file."""

from __future__ import annotations

import contextlib
import logging
from enum import StrEnum
from pathlib import Path

import typer

from reidcli.retrieval.evaluate import EvalOptions, evaluate_path
from reidcli.retrieval.report import (
    camera_table,
    json_output,
    result_json,
    result_table,
    write_json,
)
from reidcli.retrieval.rerank import RerankParams
from reidcli.runtime.device import UnknownDevice, resolve_device
from reidcli.utils.logging import console, stdout_console
from reidcli.utils.outputs import claim_output

log = logging.getLogger(__name__)


class MetricName(StrEnum):
    cosine = "cosine"
    euclidean = "euclidean"


def check_device(device: str) -> str:
    """Validate `--device` early so a typo is a one-line error, not a torch traceback."""
    try:
        return str(resolve_device(device))
    except UnknownDevice as err:
        raise typer.BadParameter(str(err)) from None


def _check_level(value: float | None) -> float | None:
    if value is not None and not 0.0 < value < 1.0:
        raise typer.BadParameter(f"a confidence level is between 0 and 1, got {value}")
    return value


def rerank_params(k1: int, k2: int, lam: float) -> RerankParams:
    try:
        return RerankParams(k1, k2, lam)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def warn_unused_rerank_options(ctx: typer.Context, rerank: bool) -> None:
    """--k1/--k2/--lambda typed without --rerank do nothing: say so rather than ignore them."""
    # By name: typer ships its own copy of click, whose ParameterSource is another enum.
    typed = [f"--{name}" for name, param in (("k1", "k1"), ("k2", "k2"), ("lambda", "lam"))
             if getattr(ctx.get_parameter_source(param), "name", None) == "COMMANDLINE"]
    if typed and not rerank:
        log.warning("%s only apply with --rerank: ignored (add --rerank to re-rank)",
                    ", ".join(typed))


def evaluate(
    ctx: typer.Context,
    source: Path = typer.Argument(
        ..., help="Feature bank (.h5) or distance file written by `reid rerank`."),
    metric: MetricName = typer.Option(MetricName.cosine, "--metric",
                               help="cosine: squared euclidean on L2-normalised features; "
                                    "euclidean: squared euclidean on raw features."),
    max_rank: int = typer.Option(50, "--max-rank", min=1, help="Length of the CMC curve."),
    json_out: str | None = typer.Option(None, "--json", metavar="PATH",
                                        help="Also write the results as JSON ('-' = stdout)."),
    per_camera: bool = typer.Option(False, "--per-camera", help="Breakdown by query camera."),
    ci: float | None = typer.Option(None, "--ci", callback=_check_level,
                                    help="Bootstrap confidence level over queries, e.g. 0.95."),
    ci_samples: int = typer.Option(1000, "--ci-samples", min=10, help="Bootstrap resamples."),
    rerank: bool = typer.Option(False, "--rerank", help="Exact k-reciprocal re-ranking first."),
    k1: int = typer.Option(20, "--k1", help="Re-ranking: k-reciprocal neighbourhood size."),
    k2: int = typer.Option(6, "--k2", help="Re-ranking: local query expansion size."),
    lam: float = typer.Option(0.3, "--lambda", help="Re-ranking: weight of the original distance."),
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
                                   help="Let --json replace a file that does not hold "
                                        "evaluation results."),
) -> None:
    """Market-1501 protocol: mAP, mINP and CMC of a bank's query split against its gallery."""
    warn_unused_rerank_options(ctx, rerank)
    params = rerank_params(k1, k2, lam) if rerank else None
    to_file = json_out is not None and json_out != "-"
    # Claimed before the work so that a bad --json fails at once, not after evaluating.
    with (claim_output(json_output(json_out, source, overwrite)) if to_file  # type: ignore[arg-type]
          else contextlib.nullcontext()):
        _evaluate(source, params, json_out, metric=metric.value, qe=qe, dba=dba,
                  query_split=query_split, gallery_split=gallery_split,
                  device=check_device(device),
                  options=EvalOptions(max_rank=max_rank, per_camera=per_camera, ci=ci,
                                      ci_samples=ci_samples, budget=chunk_mb * 2**20))


def _evaluate(source: Path, params: RerankParams | None, json_out: str | None, *,
              metric: str, qe: int, dba: int, query_split: str, gallery_split: str,
              device: str, options: EvalOptions) -> None:
    result = evaluate_path(
        source, metric=metric, rerank=params, qe=qe, dba=dba,  # type: ignore[arg-type]
        query_split=query_split, gallery_split=gallery_split, device=device, options=options,
    )
    # With `--json -` stdout carries only the JSON; the tables go to stderr.
    out = console if json_out == "-" else stdout_console
    out.print(result_table(result))
    if options.per_camera:
        out.print(camera_table(result))
    if json_out == "-":
        stdout_console.print(result_json(result), markup=False, highlight=False, soft_wrap=True)
    elif json_out:
        write_json(result, json_out)
