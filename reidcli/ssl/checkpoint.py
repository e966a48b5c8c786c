"""What a pre-training run writes: `trainer.pt` for `--resume` and teacher exports.

    RUN_DIR/
      config.toml        resolved PretrainConfig (a valid recipe; --resume reads it)
      trainer.pt         student, teacher (backbones + heads + mask token), centres,
                         optimiser, grad scaler, and the schedule position (iteration)
      model.safetensors  } the teacher backbone as a ReidModel (reidcli.models.save_model):
      model.json         } what `reid finetune --pretrained RUN_DIR` and `reid extract` read
      metrics.jsonl      one record per finished epoch
      train.log          human-readable log

All files are replaced atomically. The schedules are a function of the configuration, so
the iteration number is the whole schedule state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidcli.errors import TrainingError
from reidcli.models import ModelConfig, build_model, model_config_from, save_model
from reidcli.runtime.rundir import RunDir
from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.network import SSLNetwork

log = logging.getLogger(__name__)

TRAINER_FORMAT = "reidcli-pretrainer"
TRAINER_VERSION = 1


def model_config(cfg: PretrainConfig, drop_path: float | None = None) -> ModelConfig:
    """The ReidModel configuration of the pre-trained backbone (the exported model.json)."""
    return model_config_from(
        cfg, part_tokens=cfg.parts if cfg.method == "pass" else 0,
        **({} if drop_path is None else {"drop_path": drop_path}),
    )


@dataclass
class TrainingState:
    """Everything that changes during training, by reference."""

    student: SSLNetwork
    teacher: SSLNetwork
    objective: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


def save_trainer(run: RunDir, state: TrainingState, iteration: int, epoch: int,
                 epoch_stats: dict[str, Any] | None = None) -> None:
    """Commit the training state; `epoch_stats`: the running metric sums of an unfinished
    epoch, so that a resume in its middle reports the same epoch record."""
    run.save_trainer(
        {
            "format": TRAINER_FORMAT,
            "version": TRAINER_VERSION,
            "iteration": iteration,
            "epoch": epoch,
            "epoch_stats": epoch_stats,
            "student": state.student.state_dict(),
            "teacher": state.teacher.state_dict(),
            "objective": state.objective.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scaler": state.scaler.state_dict(),
        }
    )


def load_trainer(
    run: RunDir, state: TrainingState, device: torch.device
) -> tuple[int, dict[str, Any] | None]:
    """Restore `state` from the run's trainer.pt; return the iteration to continue from and
    the running sums of its unfinished epoch (None when saved at an epoch's end, or by a
    version that did not keep them)."""
    saved: dict[str, Any] = run.load_trainer()
    if saved.get("format") != TRAINER_FORMAT:
        raise TrainingError(f"{run.trainer_path} is not a pre-training checkpoint")
    if saved.get("version") != TRAINER_VERSION:
        raise TrainingError(
            f"{run.trainer_path} has version {saved.get('version')}, expected {TRAINER_VERSION}"
        )
    try:
        state.student.load_state_dict(saved["student"])
        state.teacher.load_state_dict(saved["teacher"])
        state.objective.load_state_dict(saved["objective"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.scaler.load_state_dict(saved["scaler"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise TrainingError(f"{run.trainer_path} does not fit this configuration: {err}") from err
    state.objective.to(device)
    return int(saved["iteration"]), saved.get("epoch_stats")


def export_teacher(run_dir: str | Path, teacher: SSLNetwork, cfg: PretrainConfig) -> Path:
    """Save the teacher backbone as a ReidModel run (model.safetensors + model.json)."""
    model_cfg = model_config(cfg)
    model = build_model(model_cfg)
    model.backbone.load_state_dict(teacher.backbone.state_dict())
    save_model(run_dir, model, model_cfg)
    return Path(run_dir)
