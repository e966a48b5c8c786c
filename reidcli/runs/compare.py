"""`reid compare`: training runs side by side, from the files every run writes.

A run directory of `reid finetune` or `reid pretrain` always holds `config.toml` (the
resolved configuration), `metrics.jsonl` (one record per epoch) and `train.log` (timestamped
lines); nothing else is read, so a run still in progress or one whose weights were deleted
compares too. Per run: the configuration keys that differ between the runs, the final and
best retrieval scores per evaluation dataset (fine-tuning), the final loss terms and teacher
statistics (pre-training), epochs, wall time and images/s. Runs whose configurations differ
only by `seed` form one group, reported as mean ± sample standard deviation, as the study
(docs/study.md) reports its seeds.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidcli.errors import ReidError
from reidcli.runtime.rundir import RunDir
from reidcli.ssl.config import runtime_fields as pretrain_runtime_fields
from reidcli.training.config import runtime_fields as finetune_runtime_fields
from reidcli.utils.io import atomic_write_text, json_with_keys
from reidcli.utils.outputs import Output, claim_output

SCORES = ("mAP", "R1", "mINP")
"""The retrieval scores compared, fractions in metrics.jsonl; the best epoch is the one with
the highest mAP (the one `best/` holds)."""
FINAL_KEYS = ("loss", "teacher_entropy", "centre_norm")
"""Read from the last epoch record when a run has them (pre-training has no retrieval score)."""
# Options that cannot change what a run learns or records; their differences are noise here.
# `device`, `eval_every` and `max_iters` are runtime options too but change the speed, the
# best epoch found or the length of the run, so they stay.
IGNORED = (finetune_runtime_fields() | pretrain_runtime_fields()) - {
    "device", "eval_every", "max_iters"}
SEED = "seed"
_STAMP = "%Y-%m-%d %H:%M:%S"


@dataclass
class RunSummary:
    """One run: its flattened configuration and its numbers (scores as fractions)."""

    path: Path
    config: dict[str, Any]
    values: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> Any:
        return self.config.get(SEED)


@dataclass
class Group:
    """Runs whose configurations differ only by seed."""

    runs: list[RunSummary]
    stats: dict[str, tuple[float, float]]  # value name -> (mean, sample sd)

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.runs]


@dataclass
class Comparison:
    runs: list[RunSummary]
    differing: list[str]  # configuration keys whose values are not all equal (seed included)
    groups: list[Group]

    @property
    def grouped(self) -> bool:
        """Whether grouping merged anything (otherwise a table of runs says it all)."""
        return len(self.groups) < len(self.runs)

    @property
    def columns(self) -> list[str]:
        """Every value name of any run: scores, then the other numbers, then the run's size
        and speed (first-seen order within each)."""
        names: dict[str, None] = {}
        for run in self.runs:
            names.update(dict.fromkeys(run.values))
        return sorted(names, key=_column_rank)


_SCORE_NAMES = {*SCORES, *(f"best {k}" for k in SCORES), "best epoch"}
_SIZE_NAMES = ("epochs", "iterations", "wall s", "images/s")


def _column_rank(name: str) -> int:
    base = name.split(" [")[0]
    return 0 if base in _SCORE_NAMES else 2 if base in _SIZE_NAMES else 1


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), sd


def read_config(run: RunDir) -> dict[str, Any]:
    """config.toml as {key: value}: the tables only group keys for people."""
    try:
        data = tomllib.loads(run.config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReidError(f"{run.root} is not a training run: {run.config_path} does not "
                        "exist") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ReidError(f"cannot read {run.config_path}: {err}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in flat.items()}


def evaluations(record: dict[str, Any], name: str) -> dict[str, dict[str, float]]:
    """The retrieval scores of one epoch record per evaluation dataset. A record holds them
    at its top level (one dataset, `name`) and/or as `{"eval": {DATASET: {"mAP": ...}}}`."""
    found: dict[str, dict[str, float]] = {}
    for dataset, scores in (record.get("eval") or {}).items():
        found[dataset] = {k: float(scores[k]) for k in SCORES if k in scores}
    top = {k: float(record[k]) for k in SCORES if k in record}
    # `reid finetune` repeats its first evaluation dataset's scores at the top level, for
    # the readers of one score; that copy is not another dataset.
    if top and top not in found.values():
        found = {name: top, **found}
    return found


def wall_seconds(run: RunDir) -> float | None:
    """Seconds between the first and last line of train.log, without the pauses before
    each `--resume` (a resumed run logs a line starting with "resumed")."""
    if not run.log_path.is_file():
        return None
    total, first, last = 0.0, None, None
    for line in run.log_path.read_text(encoding="utf-8").splitlines():
        try:
            stamp = time.mktime(time.strptime(line[:19], _STAMP))
        except ValueError:
            continue  # a continuation line of a multi-line message
        if line[20:].startswith("resumed") and first is not None and last is not None:
            total += last - first
            first = None
        first = stamp if first is None else first
        last = stamp
    if first is None or last is None:
        return None
    return total + last - first


def _scores(records: list[dict[str, Any]], name: str) -> dict[str, float]:
    per_epoch = [(r, evaluations(r, name)) for r in records]
    datasets = list(dict.fromkeys(d for _, ev in per_epoch for d in ev))
    values: dict[str, float] = {}
    for dataset in datasets:
        suffix = f" [{dataset}]" if len(datasets) > 1 else ""
        evaluated = [(r, ev[dataset]) for r, ev in per_epoch if ev.get(dataset)]
        final = evaluated[-1][1]
        best_record, best = max(evaluated, key=lambda e: e[1].get("mAP", -math.inf))
        values |= {f"{k}{suffix}": final[k] for k in SCORES if k in final}
        values |= {f"best {k}{suffix}": best[k] for k in SCORES if k in best}
        if "epoch" in best_record:
            values[f"best epoch{suffix}"] = float(best_record["epoch"])
    return values


def summarise_run(path: str | Path) -> RunSummary:
    """A run directory's configuration and numbers."""
    run = RunDir(path)
    config = read_config(run)
    try:
        records = run.read_metrics()
    except ValueError as err:
        raise ReidError(f"cannot read {run.metrics_path}: {err}") from None
    name = str(_first(config.get("eval_data")) or _first(config.get("data")) or "test")
    values = _scores(records, name)
    if records:
        last = records[-1]
        values |= {k: float(last[k]) for k in FINAL_KEYS if k in last}
        values |= {k: float(v) for k, v in last.items()
                   if k.startswith("loss_") and isinstance(v, int | float)}
        values["epochs"] = float(len(records))
        if "iteration" in last:
            values["iterations"] = float(last["iteration"])
    wall = wall_seconds(run)
    if wall is not None:
        values["wall s"] = wall
    speeds = [float(r["images_per_s"]) for r in records if "images_per_s" in r]
    if speeds:
        values["images/s"] = statistics.mean(speeds)
    return RunSummary(run.root, config, values)


def _differing(runs: list[RunSummary]) -> list[str]:
    keys = dict.fromkeys(k for r in runs for k in r.config if k not in IGNORED)
    return [k for k in keys if len({repr(r.config.get(k)) for r in runs}) > 1]


def compare_runs(paths: list[str | Path]) -> Comparison:
    """Summarise every run, find the keys that differ and group the runs by all but seed."""
    if not paths:
        raise ReidError("give at least one run directory to compare")
    runs = [summarise_run(p) for p in paths]
    differing = _differing(runs)
    by_setting: dict[tuple[str, ...], list[RunSummary]] = {}
    for run in runs:
        setting = tuple(repr(run.config.get(k)) for k in differing if k != SEED)
        by_setting.setdefault(setting, []).append(run)
    groups = []
    for members in by_setting.values():
        names = dict.fromkeys(k for r in members for k in r.values)
        stats = {k: mean_sd([r.values[k] for r in members if k in r.values]) for k in names}
        groups.append(Group(members, stats))
    return Comparison(runs, differing, groups)


def comparison_json(cmp: Comparison) -> dict[str, Any]:
    """The comparison as plain data (scores as fractions, as metrics.jsonl records them)."""
    def settings(run: RunSummary) -> dict[str, Any]:
        return {k: _plain(run.config.get(k)) for k in cmp.differing}

    return {
        "differing_keys": cmp.differing,
        "runs": [{"run": str(r.path), "config": settings(r), "values": r.values}
                 for r in cmp.runs],
        "groups": [{"config": {k: v for k, v in settings(g.runs[0]).items() if k != SEED},
                    "runs": [str(r.path) for r in g.runs],
                    "seeds": [_plain(s) for s in g.seeds],
                    "mean": {k: m for k, (m, _) in g.stats.items()},
                    "sd": {k: s for k, (_, s) in g.stats.items()}}
                   for g in cmp.groups],
    }


def _first(value: Any) -> Any:
    """A list-valued setting's first item (`data` is a list since joint training)."""
    return value[0] if isinstance(value, tuple | list) and value else value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def is_comparison_json(path: Path) -> bool:
    """Whether `path` holds a comparison written by `write_comparison_json`."""
    return json_with_keys(path, ("differing_keys", "runs", "groups"))


def write_comparison_json(cmp: Comparison, path: str | os.PathLike[str],
                          overwrite: bool = False) -> Path:
    """Write the comparison as JSON, atomically; never over a file of one of the runs, and
    over a file `reid compare` did not write only with `overwrite`."""
    inputs = [p for r in cmp.runs for p in (RunDir(r.path).config_path,
                                            RunDir(r.path).metrics_path,
                                            RunDir(r.path).log_path)]
    claim = Output(path, "`reid compare --json`", ours=is_comparison_json, inputs=inputs,
                   overwrite=overwrite, option="--json")
    with claim_output(claim) as dest:
        atomic_write_text(dest, json.dumps(comparison_json(cmp), indent=2) + "\n")
    return dest
