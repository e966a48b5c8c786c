"""Pieces shared by the command modules: the error-handling group and option parsers."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, TypeVar, get_origin, get_type_hints

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup
from typer.models import OptionInfo

from reidcli.errors import ReidError
from reidcli.utils.logging import console

log = logging.getLogger("reidcli")
F = TypeVar("F", bound=Callable[..., Any])


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



def given(**options: Any) -> dict[str, Any]:
    """The options that were typed: every option of a recipe-backed command defaults to
    None, so that only those override the recipe."""
    return {k: v for k, v in options.items() if v is not None}


def recipe_overrides(ctx: click.Context, skip: tuple[str, ...] = (),
                     convert: Mapping[str, tuple[str, Callable[[Any], Any]]] | None = None
                     ) -> dict[str, Any]:
    """The typed options of a recipe-backed command as config overrides: every parameter
    that is not None sets the config field of its name, or `convert[name]` = (field,
    function of the value); `skip` lists the parameters handled by the command itself."""
    out: dict[str, Any] = {}
    for name, value in ctx.params.items():
        if name in skip or value is None:
            continue
        field, fn = (convert or {}).get(name, (name, None))
        out[field] = fn(value) if fn is not None else value
    return given(**out)


def typed(ctx: click.Context, names: Mapping[str, str] | None = None) -> list[str]:
    """Parameters typed on the command line (not left at their default), renamed by `names`.

    By name: typer ships its own copy of click, whose ParameterSource is another enum.
    """
    return [(names or {}).get(param, param) for param in ctx.params
            if getattr(ctx.get_parameter_source(param), "name", None) == "COMMANDLINE"]


def default_help(defaults: Mapping[str, object], name: str, text: str) -> str:
    """`text (default: X)`, X from the stage's defaults (HxW sizes, on/off switches)."""
    value = defaults[name]
    if isinstance(value, tuple) and len(value) == 2:
        value = f"{value[0]}x{value[1]}"
    elif isinstance(value, bool):
        value = "on" if value else "off"
    return f"{text} (default: {value})."


def option_group(target: str | None, build: Callable[..., Any],
                 options: Mapping[str, tuple[Any, Any]]) -> Callable[[F], F]:
    """Options several commands share, declared once: the decorated command gets them in its
    signature (so typer parses and documents them) and receives `build(**values)` as its
    parameter `target` (with None, nothing: the values are in the click context's params).
    `options` maps a parameter name to (type, `typer.Option(...)`).
    """
    def decorate(fn: F) -> F:
        hints = get_type_hints(fn, include_extras=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                         annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.name != target]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info,
                                   annotation=kind) for name, (kind, info) in options.items()]

        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            group = {name: values.pop(name) for name in options}
            return fn(**values, **({target: build(**group)} if target is not None else {}))

        params = [*own, *added]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]
    return decorate


# One row of an option table: `help`, `(type, help)` or `(type, flags, help)`, the flags
# written as in a usage line (`--data-option -O KEY=VALUE`: a word that is no flag is the
# metavar); or, for an option declared otherwise, `(type, typer.Option(...))` or
# `(Annotated[type, typer.Option(...)], default)` as it is.
OptionRow = str | tuple[Any, Any] | tuple[Any, str, str]


def _flag(name: str, kind: Any) -> str:
    flag = "--" + name.replace("_", "-")
    return f"{flag}/--no-{flag[2:]}" if kind is bool else flag


def table_option(panel: str, name: str, row: OptionRow, defaults: Mapping[str, object],
                 recipe: bool) -> tuple[Any, Any]:
    """An option from its table row. Its flag is its name (`--name`, `--name/--no-name` for a
    switch), its type that of its default in `defaults` (an HxW size is typed as text),
    unless the row says otherwise. A `recipe` override defaults to None (not typed) and a name
    in `defaults` gets `(default: X)` added to its help; any other option defaults to
    `defaults[name]` (None when absent, `...` when required)."""
    if isinstance(row, tuple) and isinstance(row[-1], OptionInfo):
        row[-1].rich_help_panel = panel
        return row
    if isinstance(row, tuple) and get_origin(row[0]) is Annotated:
        return row
    *head, text = (row,) if isinstance(row, str) else row
    default = defaults.get(name)
    kind = head[0] if head else (str if isinstance(default, tuple) else type(default))
    words = head[1].split() if len(head) > 1 else [_flag(name, kind)]
    metavar = next((w for w in words if not w.startswith("-")), None)
    if recipe:
        text = default_help(defaults, name, text) if name in defaults else text
        default = None
    return kind if default is not None else kind | None, typer.Option(
        default, *(w for w in words if w.startswith("-")), metavar=metavar,
        rich_help_panel=panel, help=text)


def option_table(panels: Mapping[str, Mapping[str, OptionRow]],
                 defaults: Mapping[str, object] | None = None, recipe: bool = False,
                 target: str | None = None, build: Callable[..., Any] = given
                 ) -> Callable[[F], F]:
    """A command's options as one table, panel -> {name: row} (see `table_option`), in the
    order --help lists them. The command receives `build(**values)` as its parameter
    `target`; with None, nothing (the values are in the click context's params)."""
    return option_group(target, build, {
        name: table_option(panel, name, row, defaults or {}, recipe)
        for panel, rows in panels.items() for name, row in rows.items()})


def recipe_options(defaults: Mapping[str, object], panels: Mapping[str, Mapping[str, OptionRow]],
                   target: str | None = None, build: Callable[..., Any] = given
                   ) -> Callable[[F], F]:
    """Recipe overrides as one table (`option_table`): every option defaults to None, and
    `recipe_overrides` reads the typed ones; `defaults` are the stage's, quoted in the help."""
    return option_table(panels, defaults, recipe=True, target=target, build=build)


def check_device(device: str) -> str:
    """Validate `--device` early so a typo is a one-line error, not a torch traceback."""
    from reidcli.runtime.device import UnknownDevice, resolve_device

    try:
        return str(resolve_device(device))
    except UnknownDevice as err:
        raise typer.BadParameter(str(err)) from None


# Single options that several commands declare (the default stays in each signature).
class MetricName(StrEnum):
    cosine = "cosine"
    euclidean = "euclidean"


MetricOpt = Annotated[MetricName, typer.Option(
    "--metric", help="cosine: squared euclidean on L2-normalised features; euclidean: "
    "squared euclidean on raw features.")]
QuerySplitOpt = Annotated[str, typer.Option("--query-split", help="Bank split of the queries.")]
GallerySplitOpt = Annotated[str, typer.Option("--gallery-split",
                                              help="Bank split of the gallery.")]


# Declarations of the options most commands take; the default stays in each signature
# (`device: Annotated[str, device_option()] = "auto"`), the panel and help may differ.
def device_option(panel: str | None = None, help: str = "auto, cpu, cuda or cuda:N.") -> Any:
    return typer.Option("--device", help=help, rich_help_panel=panel)


def amp_option(panel: str | None = None) -> Any:
    return typer.Option("--amp", help="auto|bf16|fp16|off (auto: fp16 on CUDA, off on CPU).",
                        rich_help_panel=panel)


def workers_option(panel: str | None = None, help: str = "DataLoader workers.") -> Any:
    return typer.Option("--workers", "-j", min=0, help=help, rich_help_panel=panel)


def batch_size_option(panel: str | None = None, help: str | None = None) -> Any:
    return typer.Option("--batch-size", "-b", min=1, help=help, rich_help_panel=panel)
