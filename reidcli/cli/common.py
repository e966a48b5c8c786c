"""Pieces shared by the command modules: the error-handling group and option parsers."""

from __future__ import annotations

import logging

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from reidcli.errors import ReidError
from reidcli.utils.logging import console

log = logging.getLogger("reidcli")


class CliState:
    verbose: bool = False
    quiet: bool = False


state = CliState()


class ReidGroup(TyperGroup):
    """Turns `ReidError` into a one-line red message and its exit code: 1, or 2 for a
    `UsageError` (traceback with -v).

    Click already maps usage errors to exit code 2; anything else is a bug and keeps its
    traceback.
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ReidError as err:
            if state.verbose:
                console.print_exception(show_locals=False)
            # soft_wrap: the message stays one line (paths whole for copying and grep).
            console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(err.exit_code) from None


def parse_size(text: str) -> tuple[int, int]:
    """Parse `HxW` (e.g. `256x128`) into (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HxW such as 256x128, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise typer.BadParameter(f"sizes must be positive, got {text!r}")
    return h, w
