"""The comparison as a rich table: one row per run, or per seed group (mean ± sd)."""

from __future__ import annotations

import re
from typing import Any

from rich.table import Table

from reidcli.runs.compare import SCORES, SEED, Comparison

_PERCENT = re.compile(rf"^(best )?({'|'.join(SCORES)})( \[.*\])?$")
_COUNTS = {"epochs", "iterations"}
# In the JSON only: the table keeps to what fits a terminal.
_JSON_ONLY = tuple(f"best {k}" for k in SCORES if k != "mAP")


def _label(name: str) -> str:
    m = _PERCENT.match(name)
    return f"{m.group(1) or ''}{m.group(2)} %{m.group(3) or ''}" if m else name


def format_value(name: str, value: float) -> str:
    """A value as the table shows it: scores in percent, counts as integers."""
    if _PERCENT.match(name):
        return f"{100 * value:.1f}"
    if (name in _COUNTS or name.startswith("best epoch")) and float(value).is_integer():
        return str(int(value))
    if name == "wall s":
        return f"{value:.0f}"
    if name == "images/s":
        return f"{value:.1f}"
    return f"{value:.4g}"


def format_mean_sd(name: str, mean: float, sd: float) -> str:
    return f"{format_value(name, mean)} ± {format_value(name, sd)}"


def _setting(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return "-" if value is None else str(value)


def comparison_table(cmp: Comparison, group: bool = True) -> Table:
    keys = [k for k in cmp.differing if not (group and cmp.grouped and k == SEED)]
    table = Table(title="runs compared" + (" (mean ± sd over seeds)" if group and cmp.grouped
                                           else ""))
    columns = [n for n in cmp.columns if not n.startswith(_JSON_ONLY)]
    if group and cmp.grouped:
        table.add_column("n", justify="right")
        table.add_column("seeds")
    else:
        table.add_column("run", overflow="fold")
    for key in keys:
        table.add_column(key)
    for name in columns:
        table.add_column(_label(name), justify="right")
    if group and cmp.grouped:
        for g in cmp.groups:
            first = g.runs[0]
            cells = [str(len(g.runs)), "/".join(map(_setting, g.seeds))]
            cells += [_setting(first.config.get(k)) for k in keys]
            cells += [format_mean_sd(n, *g.stats[n]) if len(g.runs) > 1 and n in g.stats
                      else format_value(n, g.stats[n][0]) if n in g.stats else "-"
                      for n in columns]
            table.add_row(*cells)
    else:
        for run in cmp.runs:
            cells = [str(run.path)] + [_setting(run.config.get(k)) for k in keys]
            cells += [format_value(n, run.values[n]) if n in run.values else "-"
                      for n in columns]
            table.add_row(*cells)
    return table
