"""`reid compare`: training runs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from reidcli.runs.compare import compare_runs, comparison_json, write_comparison_json
from reidcli.runs.report import comparison_tables
from reidcli.utils.logging import console, stdout_console


def compare(
    runs: list[Path] = typer.Argument(..., metavar="RUN_DIR",
                                      help="Run directories of `reid finetune` / `reid pretrain`."),
    json_out: str | None = typer.Option(None, "--json", metavar="PATH",
                                        help="Also write the comparison as JSON ('-' = stdout)."),
    group: bool = typer.Option(True, "--group/--no-group",
                               help="Merge runs that differ only by seed into mean ± sd."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json "
                                   "file that reid compare did not write."),
) -> None:
    """The settings that differ, final and best mAP / R1 / mINP, epochs, time and images/s."""
    result = compare_runs(runs)
    # With `--json -` stdout carries only the JSON; the table goes to stderr.
    out = console if json_out == "-" else stdout_console
    for table in comparison_tables(result, group=group):
        out.print(table)
    if json_out:
        text = json.dumps(comparison_json(result), indent=2) + "\n"
        if json_out == "-":
            stdout_console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
        else:
            write_comparison_json(result, json_out, overwrite)
