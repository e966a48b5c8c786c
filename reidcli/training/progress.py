"""What a person watching a fine-tuning run sees: progress bars and the closing summary."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from reidcli.utils.logging import console


class TrainProgress:
    """An overall epoch bar and a per-epoch iteration bar with loss, accuracy, lr, images/s.

    Disabled (a no-op) on ranks other than 0 and when the caller asks for no progress.
    """

    def __init__(self, total_epochs: int, start_epoch: int, enabled: bool) -> None:
        self.enabled = enabled
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
            transient=False,
        )
        self._run = self._progress.add_task(
            "epochs", total=total_epochs, completed=start_epoch - 1, stats=""
        )

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._progress is None:
            return
        if self._epoch is not None:
            self._progress.remove_task(self._epoch)
        self._epoch = self._progress.add_task(f"epoch {epoch}", total=steps, stats="")

    def update_step(self, loss: float, acc: float, lr: float, ips: float) -> None:
        if self._progress is None or self._epoch is None:
            return
        stats = f"loss {loss:.3f}  acc {acc:6.1%}  lr {lr:.2e}  {ips:7.1f} img/s"
        self._progress.update(self._epoch, advance=1, stats=stats)

    def end_epoch(self, stats: str) -> None:
        if self._progress is None or self._run is None:
            return
        self._progress.update(self._run, advance=1, stats=stats)


def summary_table(summary: dict[str, Any]) -> Table:
    """Two-column table of the run's outcome (keys as given, values formatted)."""
    table = Table(title="fine-tuning summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in summary.items():
        if isinstance(value, float):
            text = f"{value:.2%}" if key.startswith(("mAP", "R1", "R5", "R10", "mINP")) else (
                f"{value:.4g}"
            )
        else:
            text = str(value)
        table.add_row(key, text)
    return table


def print_summary(summary: dict[str, Any]) -> None:
    console.print(summary_table(summary))
