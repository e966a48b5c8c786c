"""The options `reid pretrain` and `reid finetune` share (run, device, model), declared once.

Both commands default every option to None so that only typed ones override the recipe;
their help shows the stage's defaults, passed in because importing the config dataclasses
(torch, timm, torchvision) would slow every `reid` command down by seconds.
tests/test_cli_options.py checks them against the dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import typer

from reidcli.cli.common import recipe_options


class Panel(StrEnum):
    """The --help panels of `reid pretrain` and `reid finetune`."""

    METHOD = "Method"
    DATA = "Data"
    MODEL = "Model"
    OPTIM = "Optimisation"
    USL = "Unsupervised (cluster contrast)"
    RUN = "Run"

C = TypeVar("C")


@dataclass(frozen=True)
class RunArgs:
    # The options that steer how the config is made rather than setting one of its fields.
    NOT_FIELDS: ClassVar[tuple[str, ...]] = ("recipe", "output", "resume")

    stem: str | None
    drop_path: float | None
    allow_partial: bool | None
    workers: int | None
    amp: str | None
    seed: int | None
    device: str | None
    tensorboard: bool | None
    recipe: Path | None
    output: Path | None
    resume: bool

    def config(self, resolve: Callable[[Path | None, dict[str, Any]], C],
               resume: Callable[[Path, dict[str, Any]], C], overrides: dict[str, Any]) -> C:
        """defaults < recipe < `overrides`; or, with --resume, the run's own config.toml."""
        if self.output is None:
            raise typer.BadParameter("a run directory is required", param_hint="-o/--output")
        if self.resume:
            if self.recipe is not None:
                raise typer.BadParameter(
                    "--resume continues with the run's own config.toml; drop --recipe",
                    param_hint="--recipe",
                )
            return resume(self.output, overrides)
        return resolve(self.recipe, {**overrides, "output": str(self.output)})


def run_options(defaults: Mapping[str, object]) -> Callable[[Any], Any]:
    """The shared options, documented with the stage's `defaults` (stem, drop_path, workers,
    seed, device); the command receives them as one `RunArgs`."""
    return recipe_options(defaults, {
        Panel.MODEL: {
            "stem": (str, "patch or ics (TransReID-SSL's conv stem)"),
            "drop_path": (float, "Stochastic depth rate"),
            "allow_partial": (bool, "Accept initial weights whose shapes do not all fit."),
        },
        Panel.DATA: {"workers": (int, "DataLoader worker processes")},
        Panel.OPTIM: {
            "amp": (str, "Mixed precision: auto, bf16, fp16 or off (default: auto = fp16 on "
                    "CUDA, off on CPU)."),
            "seed": (int, "Random seed"),
        },
        Panel.RUN: {
            "recipe": (Path, "TOML recipe (see recipes/); options given here override it."),
            "output": (Path, "-o --output", "Run directory (created)."),
            "resume": (bool, typer.Option(False, "--resume", help="Continue the run in -o where "
                       "it stopped (its trainer state), with its own config.toml.")),
            "device": (str, "auto, cpu, cuda or cuda:N"),
            "tensorboard": (bool, "Also write the per-epoch metrics to RUN_DIR/tb for "
                            "TensorBoard (pip install 'reidcli[tensorboard]')."),
        },
    }, target="run", build=RunArgs)
