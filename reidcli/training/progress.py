"""What a person watching a fine-tuning run sees: progress bars and the closing summary."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from reidcli.utils.logging import console
from reidcli.utils.progress import EpochProgress


class TrainProgress(EpochProgress):
    """Epoch and iteration bars with loss, accuracy, lr, images/s and ETA."""

    def __init__(self, total_epochs: int, start_epoch: int, enabled: bool) -> None:
        super().__init__(total_epochs, start_epoch - 1, enabled)  # epochs count from 1

    def update_step(self, loss: float, acc: float, lr: float, ips: float) -> None:
        self.advance(f"loss {loss:.3f}  acc {acc:6.1%}  lr {lr:.2e}  {ips:7.1f} img/s")


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


EVAL_KEYS = ("mAP", "R1", "R5", "R10", "mINP")


def evaluations_table(evaluations: dict[str, dict[str, float]]) -> Table:
    """The last evaluation side by side: one row per score, one column per dataset."""
    table = Table(title="evaluation per dataset", title_justify="left")
    table.add_column("score", style="bold")
    for label in evaluations:
        table.add_column(label, justify="right")
    for key in EVAL_KEYS:
        table.add_row(key, *(f"{scores[key]:.2%}" if key in scores else "-"
                             for scores in evaluations.values()))
    return table


def print_summary(summary: dict[str, Any],
                  evaluations: dict[str, dict[str, float]] | None = None) -> None:
    """The summary, then the evaluation datasets side by side when there are several."""
    console.print(summary_table(summary))
    if evaluations and len(evaluations) > 1:
        console.print(evaluations_table(evaluations))
