"""The run directory of `reid finetune` and the atomic writes into it.

    RUN_DIR/
      config.toml        resolved configuration (a valid recipe; `--resume` reads it)
      model.safetensors  last weights  } written by reidcli.models.save_model: enough to
      model.json         model config  } rebuild the network for `reid extract`
      best/              the same two files for the epoch with the best mAP
      trainer.pt         everything `--resume` needs (weights, optimiser, scheduler, scaler,
                         sampler epoch, RNG states of every rank, best so far)
      metrics.jsonl      one JSON object per finished epoch
      train.log          human-readable log
      tb/                TensorBoard event files (`--tensorboard`)

Every file is replaced atomically (written beside it, then renamed), so an interruption
leaves either the old or the new version (and a temporary file, removed by the next save).
`trainer.pt` is written last at the end of an epoch: it is the commit point that `--resume`
continues from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from reidcli.errors import TrainingError
from reidcli.utils.diskerrors import check_free_space
from reidcli.utils.io import atomic_torch_save, atomic_write_text, remove_orphans
from reidcli.utils.outputs import Output
from reidcli.utils.paths import Under
from reidcli.utils.recipes import RecipeSchema

C = TypeVar("C")

CONFIG = "config.toml"
# An exported model is these two files, in the run directory and in best/ (reidcli.models
# writes and reads them; a folder holding them is what `--pretrained RUN_DIR` and `-c` take).
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "model.json"
TRAINER = "trainer.pt"
METRICS = "metrics.jsonl"
LOG = "train.log"
BEST = "best"
TENSORBOARD = "tb"


RUN_FILES = (CONFIG, TRAINER, METRICS, LOG, BEST, WEIGHTS_NAME, CONFIG_NAME)
"""What a run writes into its directory (`reid finetune` and `reid pretrain`)."""


def is_run_dir(root: Path) -> bool:
    """Whether a run may write into `root`: none of the names it writes is there yet, or
    it is already a run directory (a config.toml that a run wrote)."""
    if not any((root / name).exists() for name in RUN_FILES):
        return True
    try:
        with (root / CONFIG).open(encoding="utf-8") as f:
            return f.readline().startswith("# reid ")
    except (OSError, UnicodeDecodeError):
        return False


def run_output(root: str | Path, made_by: str,
               inputs: Sequence[str | os.PathLike[str] | None]) -> Output:
    """A run directory as an output: refused if it holds an input (e.g. `--pretrained` is
    this folder) or files that no run wrote; `claim_output` locks it for the run."""
    return Output(root, made_by, ours=is_run_dir, inputs=inputs, flag=None, directory=True)


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check_space(self, parameters: int, copies: int) -> None:
        """Refuse to start when the disk cannot hold `copies` float32 copies of
        `parameters` values (weights, optimiser state) beyond what the run already has."""
        have = sum(p.stat().st_size for p in self.root.glob("**/*") if p.is_file()) \
            if self.root.is_dir() else 0
        check_free_space(self.trainer_path, 4 * parameters * copies - have)

    config_path = Under(CONFIG)
    trainer_path = Under(TRAINER)
    metrics_path = Under(METRICS)
    log_path = Under(LOG)
    best_dir = Under(BEST)
    tensorboard_dir = Under(TENSORBOARD)

    def has_checkpoint(self) -> bool:
        return self.trainer_path.is_file()

    def prepare_new(self) -> None:
        """Create the folder for a fresh run; refuse to overwrite a run that can be resumed."""
        if self.has_checkpoint():
            raise TrainingError(
                f"{self.root} already holds a training run ({TRAINER}); continue it with "
                "--resume or choose another -o/--output"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in (self.metrics_path, self.log_path):
            stale.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def saved_config(self, schema: RecipeSchema[C]) -> C:
        """The resolved configuration this run saved (config.toml), located here."""
        if not self.config_path.is_file():
            raise TrainingError(
                f"cannot resume: {self.config_path} does not exist: nothing of a run was "
                f"committed in {self.root} (not a run directory, or a run stopped before it "
                "started); start it again without --resume"
            )
        return schema.resolve(self.config_path, {"output": str(self.root), "resume": True})

    def resume_config(self, schema: RecipeSchema[C], overrides: dict[str, Any] | None = None) -> C:
        """The saved configuration with the options given again applied on top. Whether the
        result may continue the run (only runtime options changed) is checked by the stage
        itself, so library users get the same check."""
        values = {**(overrides or {}), "output": str(self.root), "resume": True}
        return dataclasses.replace(self.saved_config(schema), **values)  # type: ignore[type-var]

    # -- resume state ----------------------------------------------------------------------
    def save_trainer(self, state: dict[str, Any]) -> None:
        remove_orphans(self.root, (TRAINER, WEIGHTS_NAME))
        atomic_torch_save(state, self.trainer_path)

    def load_trainer(self) -> dict[str, Any]:
        if not self.has_checkpoint():
            raise TrainingError(
                f"cannot resume: {self.trainer_path} does not exist (no epoch of this run "
                "finished yet, or this is not a run directory)"
            )
        try:
            return torch.load(self.trainer_path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: say which and why
            raise TrainingError(f"cannot read {self.trainer_path}: {err}") from err

    # -- metrics and log -------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        atomic_write_text(self.metrics_path, text)

    def keep_metrics_until(self, epoch: int) -> list[dict[str, Any]]:
        """Drop records of epochs after `epoch` (an interrupted epoch is run again)."""
        kept = [r for r in self.read_metrics() if int(r.get("epoch", 0)) <= epoch]
        self.write_metrics(kept)
        return kept

    def append_log(self, lines: list[str]) -> None:
        """Append timestamped lines to train.log (rewritten atomically: it stays small)."""
        old = self.log_path.read_text(encoding="utf-8") if self.log_path.is_file() else ""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        new = "".join(f"{stamp} {line}\n" for line in lines)
        atomic_write_text(self.log_path, old + new)


class RunSchema(RecipeSchema[C]):
    """A stage's recipe schema that also reads back what its runs saved: one definition of
    `load_run_config` and `resume_config` for every stage. `loaded` finishes a saved
    configuration (e.g. makes its paths absolute)."""

    def __init__(self, cls: type[C], tuple_types: dict[str, type],
                 one_or_many: frozenset[str] = frozenset(),
                 loaded: Callable[[C], C] | None = None) -> None:
        super().__init__(cls, tuple_types, one_or_many)
        self.loaded = loaded or (lambda cfg: cfg)

    def load_run_config(self, run_dir: str | Path) -> C:
        """The resolved configuration saved in a run directory (config.toml)."""
        return self.loaded(RunDir(run_dir).saved_config(self))

    def resume_config(self, run_dir: str | Path, overrides: dict[str, Any] | None = None) -> C:
        """The saved configuration of `run_dir` with the options given again applied on top
        (the stage checks that only runtime options changed)."""
        return self.loaded(RunDir(run_dir).resume_config(self, overrides))
