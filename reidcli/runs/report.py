"""The comparison as rich tables: one row per run, or per seed group (mean ± sd).

A few differing settings are columns of the table; many (runs of different stages, say)
go into a table of their own, one column per row of the scores table, so neither gets
too wide to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from reidcli.runs.compare import SCORES, SEED, Comparison

_PERCENT = re.compile(rf"^(best )?({'|'.join(SCORES)})( \[.*\])?$")
_COUNTS = {"epochs", "iterations"}
# In the JSON only: the table keeps to what fits a terminal.
_JSON_ONLY = tuple(f"best {k}" for k in SCORES if k != "mAP")
SETTING_COLUMNS = 4
"""Up to this many differing settings are columns of the scores table."""


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


@dataclass
class _Row:
    head: list[str]  # run, or n and seeds
    config: dict[str, Any]
    cells: dict[str, str]  # value name -> shown text


def _rows(cmp: Comparison, grouped: bool) -> tuple[list[str], list[_Row]]:
    if grouped:
        return ["n", "seeds"], [
            _Row([str(len(g.runs)), "/".join(map(_setting, g.seeds))], g.runs[0].config,
                 {n: format_mean_sd(n, m, s) if len(g.runs) > 1 else format_value(n, m)
                  for n, (m, s) in g.stats.items()})
            for g in cmp.groups]
    return ["run"], [_Row([str(r.path)], r.config,
                          {n: format_value(n, v) for n, v in r.values.items()})
                     for r in cmp.runs]


def comparison_tables(cmp: Comparison, group: bool = True) -> list[Table]:
    """The scores table, preceded by a settings table when many settings differ."""
    grouped = group and cmp.grouped
    keys = [k for k in cmp.differing if not (grouped and k == SEED)]
    head, rows = _rows(cmp, grouped)
    names = [n for n in cmp.columns if not n.startswith(_JSON_ONLY)]
    wide = len(keys) > SETTING_COLUMNS
    title = "runs compared" + (" (mean ± sd over seeds)" if grouped else "")
    tables = []
    if wide:
        settings = Table(title="settings that differ")
        settings.add_column("setting")
        for i in range(len(rows)):
            settings.add_column(f"#{i + 1}", overflow="fold")
        for key in keys:
            settings.add_row(key, *(_setting(row.config.get(key)) for row in rows))
        tables.append(settings)
    scores = Table(title=title)
    if wide:
        scores.add_column("#", justify="right")
    for i, name in enumerate(head):
        widest = max(len(row.head[i]) for row in rows)
        scores.add_column(name, overflow="fold", min_width=min(widest, 30),
                          justify="right" if name == "n" else "left")
    for key in [] if wide else keys:
        scores.add_column(key)
    for name in names:
        scores.add_column(_label(name), justify="right")
    for i, row in enumerate(rows):
        cells = [f"#{i + 1}"] if wide else []
        cells += row.head + ([] if wide else [_setting(row.config.get(k)) for k in keys])
        scores.add_row(*cells, *(row.cells.get(n, "-") for n in names))
    tables.append(scores)
    return tables
