"""Supervised fine-tuning (TransReID): losses, optimiser, schedule, the loop, run directories.

    from reidcli.training import FinetuneConfig, finetune
    result = finetune(FinetuneConfig(data="market1501", output="runs/m", epochs=120))
"""

from reidcli.training.config import (
    FinetuneConfig,
    load_recipe,
    load_run_config,
    resolve_config,
    resume_config,
)
from reidcli.training.engine import finetune
from reidcli.training.results import BatchInfo, EpochInfo, Hooks, RunResult

__all__ = [
    "BatchInfo",
    "EpochInfo",
    "FinetuneConfig",
    "Hooks",
    "RunResult",
    "finetune",
    "load_recipe",
    "load_run_config",
    "resolve_config",
    "resume_config",
]
