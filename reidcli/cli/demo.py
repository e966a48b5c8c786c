"""`reid demo`: option parsing only; the work is `reidcli.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import device_option, state, workers_option
from reidcli.demo import DemoOptions, run_demo


def demo(
    workdir: Path = typer.Option(Path("reid-demo"), "--workdir", "-w",
                                 help="Where data, runs, banks and results go."),
    quick: bool = typer.Option(False, "--quick", help="A ~2-minute version (smaller data, "
                               "shorter schedules); what CI runs."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the work directory's contents "
                               "and start over instead of reusing finished stages."),
    device: Annotated[str, device_option()] = "auto",
    workers: Annotated[int, workers_option(help="DataLoader worker processes of every "
                                           "stage.")] = 1,
) -> None:
    """Run the whole pipeline on synthetic data: synth -> cfs-filter -> pretrain -> finetune
    (random vs pre-trained init) -> extract -> evaluate (+ re-ranking) -> visualize.

    Each stage prints the `reid` command that does the same. A second run reuses the stages
    whose inputs did not change.
    """
    run_demo(DemoOptions(workdir=workdir, quick=quick, fresh=fresh, device=device,
                         workers=workers, progress=not state.quiet))
