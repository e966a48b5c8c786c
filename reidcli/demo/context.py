"""Where the demo keeps everything, and the generic "run or reuse" wrapper around a stage."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from reidcli.demo.command import Command
from reidcli.demo.plan import DemoPlan
from reidcli.demo.stamps import StampStore, digest
from reidcli.utils.paths import Under


@dataclass(frozen=True)
class WorkPaths:
    """Every path of a demo work directory."""

    root: Path
    stamps = Under(".stamps")
    market = Under("data", "market")
    second_world = Under("data", "second-world")
    unlabeled = Under("data", "unlabeled")
    recipe = Under("recipes", "pretrain.toml")
    finetune_recipe = Under("recipes", "finetune.toml")
    cfs_list = Under("cfs", "subset.txt")
    cfs_work = Under("cfs", "work")
    picture = Under("ranks.png")

    def run(self, name: str) -> Path:
        return self.root / "runs" / name

    def bank(self, name: str) -> Path:
        return self.root / "banks" / f"{name}.h5"

    def result(self, name: str) -> Path:
        return self.root / "results" / f"{name}.json"


@dataclass
class StageOutcome:
    name: str
    digest: str
    result: dict[str, Any]
    reused: bool
    seconds: float


@dataclass
class DemoContext:
    paths: WorkPaths
    plan: DemoPlan
    console: Console
    device: str = "auto"
    workers: int = 1
    progress: bool = True
    stamps: StampStore = field(init=False)
    outcomes: list[StageOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stamps = StampStore(self.paths.stamps)

    @property
    def device_option(self) -> str | None:
        """`--device` as printed: left out when it is the commands' own default."""
        return None if self.device == "auto" else self.device

    @property
    def market_spec(self) -> str:
        return f"market1501:{self.paths.market}"

    @property
    def second_world_spec(self) -> str:
        return f"market1501:{self.paths.second_world}"

    def run_stage(
        self,
        name: str,
        title: str,
        command: Command,
        inputs: dict[str, Any],
        outputs: Sequence[Path],
        action: Callable[[bool], dict[str, Any]],
        resume_command: Command | None = None,
        scratch: Sequence[Path] = (),
    ) -> StageOutcome:
        """Reuse the stage if it finished with these inputs, else run `action(resume)`.

        `resume` is True when the same stage was interrupted and `resume_command` exists
        (the training stages continue from their last checkpoint); otherwise the stage's
        outputs, and the `scratch` folders it keeps intermediate work in, are removed first
        so it starts clean.
        """
        inputs = {"command": command.text, **inputs}
        stamp = self.stamps.finished(name, inputs)
        if stamp is not None and all(p.exists() for p in outputs):
            self.console.rule(f"[bold]{title}[/] [dim](reused: inputs unchanged)")
            self.console.print(f"[dim]$ {command.text}[/]", highlight=False, soft_wrap=True)
            outcome = StageOutcome(name, stamp.digest, stamp.result, True, stamp.seconds)
            self.outcomes.append(outcome)
            return outcome
        resume = resume_command is not None and self.stamps.interrupted(name, inputs)
        if not resume:
            for path in (*outputs, *scratch):
                remove(path)
        shown = resume_command if resume and resume_command is not None else command
        self.console.rule(f"[bold]{title}[/]" + (" [dim](resuming)" if resume else ""))
        self.console.print(f"[bold cyan]$ {shown.text}[/]", highlight=False, soft_wrap=True)
        self.stamps.started(name, inputs)
        start = time.perf_counter()
        result = action(resume)
        seconds = time.perf_counter() - start
        self.stamps.done(name, inputs, result, seconds)
        outcome = StageOutcome(name, digest(inputs), result, False, seconds)
        self.outcomes.append(outcome)
        self.console.print(f"[dim]{title}: {seconds:.0f} s[/]", highlight=False)
        return outcome


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
