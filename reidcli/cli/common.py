"""Pieces shared by the command modules: the error-handling group and option parsers."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

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


def given(ctx: click.Context, names: dict[str, str] | None = None) -> dict[str, object]:
    """The options typed on the command line (not defaults), by parameter name.

    `names` renames parameters to the config fields they set. By name: typer ships its own
    copy of click, whose ParameterSource is another enum.
    """
    out: dict[str, object] = {}
    for param, value in ctx.params.items():
        if getattr(ctx.get_parameter_source(param), "name", None) == "COMMANDLINE":
            out[(names or {}).get(param, param)] = value
    return out


def check_device(device: str) -> str:
    """Validate `--device` early so a typo is a one-line error, not a torch traceback."""
    from reidcli.runtime.device import UnknownDevice, resolve_device

    try:
        return str(resolve_device(device))
    except UnknownDevice as err:
        raise typer.BadParameter(str(err)) from None


# Options that several commands declare: one declaration each (the default stays in the
# signature, `name: Type = default`).
class MetricName(StrEnum):
    cosine = "cosine"
    euclidean = "euclidean"


MetricOpt = Annotated[MetricName, typer.Option(
    "--metric", help="cosine: squared euclidean on L2-normalised features; euclidean: "
    "squared euclidean on raw features.")]
K1Opt = Annotated[int, typer.Option("--k1", help="Re-ranking: k-reciprocal neighbourhood size.")]
K2Opt = Annotated[int, typer.Option(
    "--k2", help="Re-ranking: local query expansion size (1 = off).")]
LambdaOpt = Annotated[float, typer.Option(
    "--lambda", help="Re-ranking: weight of the original distance.")]
QeOpt = Annotated[int, typer.Option("--qe", min=0, metavar="K",
                                    help="Average query expansion, top K.")]
DbaOpt = Annotated[int, typer.Option("--dba", min=0, metavar="K",
                                     help="Database-side augmentation, top K.")]
QuerySplitOpt = Annotated[str, typer.Option("--query-split", help="Bank split of the queries.")]
GallerySplitOpt = Annotated[str, typer.Option("--gallery-split",
                                              help="Bank split of the gallery.")]
ChunkMbOpt = Annotated[int, typer.Option("--chunk-mb", min=8,
                                         help="Memory budget of one block of distances (MiB).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
