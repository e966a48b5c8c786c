"""Reading finished (or running) training runs back: `reid compare`."""

from reidcli.runs.compare import Comparison, RunSummary, compare_runs, mean_sd, summarise_run

__all__ = ["Comparison", "RunSummary", "compare_runs", "mean_sd", "summarise_run"]
