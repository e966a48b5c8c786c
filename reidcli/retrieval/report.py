"""Human-readable tables and JSON for evaluation results."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.table import Table

from reidcli.retrieval.evaluate import EvaluationResult
from reidcli.utils.io import atomic_write_text, json_with_keys
from reidcli.utils.outputs import Output


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def result_table(r: EvaluationResult) -> Table:
    """mAP, mINP and rank-k accuracies in percent, with CI bounds when computed."""
    title = "Evaluation"
    if r.rerank:
        title += f" (re-ranked k1={r.rerank['k1']} k2={r.rerank['k2']} λ={r.rerank['lambda']})"
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value (%)", justify="right")
    if r.ci:
        t.add_column(f"{100 * r.ci['level']:.0f}% CI", justify="right")
    rows: list[tuple[str, float]] = [("mAP", r.mAP), ("mINP", r.mINP)]
    rows += [(f"rank{k}", v) for k, v in (("1", r.rank1), ("5", r.rank5), ("10", r.rank10),
                                           ("20", r.rank20))]
    for name, value in rows:
        cells = [name, _pct(value)]
        if r.ci:
            lo, hi = r.ci.get(name, [float("nan"), float("nan")])
            cells.append(f"{_pct(lo)} - {_pct(hi)}")
        t.add_row(*cells)
    t.caption = (f"{r.num_valid_queries} of {r.num_queries} queries have a positive"
                 f"{'' if r.metric is None else f'; metric {r.metric}'}"
                 f"{f'; QE {r.qe}' if r.qe else ''}{f'; DBA {r.dba}' if r.dba else ''}")
    return t


def camera_table(r: EvaluationResult) -> Table:
    t = Table(title="Per query camera")
    for col in ("camera", "queries", "valid", "mAP (%)", "mINP (%)", "rank1 (%)"):
        t.add_column(col, justify="right")
    for row in r.per_camera or []:
        t.add_row(str(row["camera"]), str(row["num_queries"]), str(row["num_valid_queries"]),
                  _pct(row["mAP"]), _pct(row["mINP"]), _pct(row["rank1"]))
    return t


def result_json(r: EvaluationResult) -> str:
    return json.dumps(r.to_dict(), indent=2)


def is_result_json(path: Path) -> bool:
    """Whether `path` holds results written by `write_json` (which may be replaced)."""
    return json_with_keys(path, ("mAP", "cmc", "num_queries"))


def json_output(path: str | os.PathLike[str], source: str | os.PathLike[str],
                overwrite: bool = False) -> Output:
    """The `--json` file of evaluating `source`: what `claim_output` checks and locks."""
    return Output(path, "`reid evaluate --json`", ours=is_result_json, inputs=[source],
                  overwrite=overwrite, option="--json")


def write_json(r: EvaluationResult, path: str | os.PathLike[str]) -> None:
    atomic_write_text(path, result_json(r) + "\n")
