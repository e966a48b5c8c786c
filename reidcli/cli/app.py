"""The `reid` application: global options and one subcommand per pipeline stage."""

from __future__ import annotations

import typer

from reidcli import __version__
from reidcli.cli.common import ReidGroup, state
from reidcli.utils.logging import setup_logging

app = typer.Typer(
    cls=ReidGroup,
    name="reid",
    help="Person re-identification toolkit: each subcommand is one stage of the pipeline.\n\n"
    "cfs-filter -> pretrain -> finetune -> extract -> evaluate / rerank",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Debug messages and tracebacks."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only warnings and errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state.verbose, state.quiet = verbose, quiet
    setup_logging(verbose=verbose, quiet=quiet)


def _register() -> None:
    # Imported here so `reid --help` stays one place that lists every stage in pipeline order.
    from reidcli.cli import (
        cfs_filter,
        compare,
        datasets,
        demo,
        evaluate,
        extract,
        finetune,
        pretrain,
        rerank,
        synth,
        visualize,
    )

    app.command("cfs-filter", help="Select source images close to the target (CFS).")(
        cfs_filter.cfs_filter
    )
    app.command("pretrain", help="Self-supervised ViT pre-training (DINO, DINO+MIM, PASS).")(
        pretrain.pretrain
    )
    app.command("finetune", help="Supervised TransReID fine-tuning.")(finetune.finetune)
    app.command("extract")(extract.extract)
    app.command("evaluate", help="CMC / mAP / mINP of a feature bank or distance file.")(
        evaluate.evaluate
    )
    app.command("rerank", help="Exact k-reciprocal re-ranking -> distance file.")(rerank.rerank)
    app.command("visualize", help="Draw ranked lists of a bank or distance file.")(
        visualize.visualize
    )
    app.command("compare", help="Training runs side by side (differing settings, scores).")(
        compare.compare
    )
    app.command("demo", help="Run the whole pipeline on synthetic data.")(demo.demo)
    app.add_typer(synth.app, name="synth")
    app.add_typer(datasets.app, name="datasets")


_register()


def main() -> None:
    app()
