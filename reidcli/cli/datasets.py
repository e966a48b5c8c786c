"""`reid datasets`: list the known datasets, or check one on disk."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from reidcli.cli.common import ReidGroup
from reidcli.data.check import CheckReport, check_parsed
from reidcli.data.loading import parse_dataset, parse_options
from reidcli.data.registry import all_datasets
from reidcli.errors import DatasetError
from reidcli.utils.logging import console, stdout_console

app = typer.Typer(
    cls=ReidGroup,
    help="List the known datasets (no subcommand) or check one on disk.",
    invoke_without_command=True,
)


@app.callback()
def _list(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="Known datasets: give NAME (searched under the data root) or NAME:PATH")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("usual folder", no_wrap=True)
    table.add_column("options")
    table.add_column("description")
    for info in all_datasets():
        table.add_row(
            info.name,
            info.folders[0] if info.folders else "-",
            ", ".join(info.options) or "-",
            info.description,
        )
    stdout_console.print(table)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    try:
        return parse_options(pairs)
    except DatasetError as err:  # bad usage (exit 2), as any malformed option
        raise typer.BadParameter(str(err), param_hint="--option") from None


def _print_report(report: CheckReport, max_problems: int) -> None:
    ds = report.dataset
    table = Table(title=f"{ds.name} at {ds.root}")
    for col in ("split", "ids", "images", "cameras"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for s in report.stats:
        table.add_row(s.split, str(s.ids), str(s.images), str(s.cameras))
    stdout_console.print(table)
    stdout_console.print(
        f"camera table size {ds.num_cams}, viewpoints {ds.num_views}, "
        f"train identities {ds.num_train_pids}"
    )
    if not report.problems:
        stdout_console.print("[green]no problems found[/]")
        return
    # One line per problem, never wrapped, so paths stay whole for copying and grep.
    stdout_console.print(f"{report.errors} error(s), {report.warnings} warning(s):")
    ordered = sorted(report.problems, key=lambda p: p.severity != "error")
    for p in ordered[:max_problems]:
        colour = "red" if p.severity == "error" else "yellow"
        where = f" [{p.split}]" if p.split else ""
        stdout_console.print(
            f"  [{colour}]{p.severity}[/] {escape(p.kind)}{escape(where)}: {escape(p.message)}",
            soft_wrap=True,
        )
    hidden = len(ordered) - max_problems
    if hidden > 0:
        stdout_console.print(f"  ... and {hidden} more (raise --max-problems to see them)")


@app.command("check")
def check(
    spec: str = typer.Argument(..., metavar="NAME[:PATH]", help="Dataset name, optionally :PATH."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Where NAME is searched ($REID_DATA_ROOT, else ./data)."
    ),
    option: list[str] = typer.Option(
        [], "-o", "--option", metavar="KEY=VALUE", help="Dataset option, e.g. variant=detected."
    ),
    verify: bool = typer.Option(
        True, "--verify/--no-verify", help="Open and decode every image (slow on big sets)."
    ),
    workers: int = typer.Option(0, "--workers", min=0, help="Decoding threads (0: auto)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    max_problems: int = typer.Option(20, "--max-problems", min=0, help="Problems to list."),
) -> None:
    """Count ids / images / cameras per split and report problems; exit 1 on errors."""
    dataset, problems = parse_dataset(spec, data_root, **_parse_options(option))
    if verify:
        total = sum(len(r) for r in dataset.splits.values())
        columns = (TextColumn("decoding images"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("decode", total=total)
            report = check_parsed(
                dataset, problems, True, workers or None, lambda n: bar.advance(task, n)
            )
    else:
        report = check_parsed(dataset, problems, verify=False)
    _print_report(report, max_problems)
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)
