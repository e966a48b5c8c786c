"""A rich progress bar for streaming stages (extraction, scoring): count, items/s and ETA."""

from __future__ import annotations

from typing import Self

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from reidcli.utils.logging import console


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column formats bytes)."""

    def __init__(self, unit: str = "img") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="cyan")


def stream_progress(enabled: bool = True, unit: str = "img") -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


class EpochProgress:
    """An overall epoch bar plus a per-epoch iteration bar, each with a free-form stats text.

    The training stages subclass it to format their own numbers. A no-op when disabled
    (ranks other than 0, `--no-progress`), so callers never branch on it.
    """

    def __init__(self, total_epochs: int, completed_epochs: int, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._run: TaskID | None = None
        self._epoch: TaskID | None = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self._run = self._progress.add_task(
            "epochs", total=total_epochs, completed=completed_epochs, stats=""
        )

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_epoch(self, epoch: int, steps: int, done: int = 0) -> None:
        if self._progress is None:
            return
        if self._epoch is not None:
            self._progress.remove_task(self._epoch)
        self._epoch = self._progress.add_task(f"epoch {epoch}", total=steps, completed=done,
                                              stats="")

    def advance(self, stats: str) -> None:
        """One iteration done; `stats` replaces the iteration bar's text."""
        if self._progress is not None and self._epoch is not None:
            self._progress.update(self._epoch, advance=1, stats=stats)

    def end_epoch(self, stats: str) -> None:
        if self._progress is not None and self._run is not None:
            self._progress.update(self._run, advance=1, stats=stats)
