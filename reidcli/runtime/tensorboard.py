"""`--tensorboard`: the scalars of metrics.jsonl, also written as TensorBoard event files.

Both trainers hand every epoch record they append to metrics.jsonl to a sink (rank 0 only).
With `--tensorboard` the sink writes each numeric field to RUN_DIR/tb with torch's
SummaryWriter, at the record's epoch (`reid finetune`) or iteration (`reid pretrain`), so
the curves are the numbers of metrics.jsonl. On `--resume` the records after the checkpoint
are redone; the writer opens with `purge_step` one past the last record kept, so TensorBoard
drops what it had logged for them and no step appears twice. A run that turns
`--tensorboard` on only at `--resume` gets its earlier records written first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from reidcli.errors import ReidError
from reidcli.runtime.rundir import RunDir

# Step counters and flags are the axes or bookkeeping, not curves.
_NOT_SCALARS = {"epoch", "iteration", "steps", "complete"}
_EVAL = {"mAP", "R1", "R5", "R10", "mINP", "eval_time_s"}


class MetricsSink(Protocol):
    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class NoSink:
    def write(self, record: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def tag(key: str) -> str:
    """TensorBoard groups by the part before '/': losses, evaluation, the rest."""
    if key in _EVAL:
        return f"eval/{key}"
    if key == "loss" or key.startswith("loss_") or key.endswith("_loss"):
        return f"loss/{key}"
    return f"train/{key}"


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """{tag: value} of a metrics record; a nested table (`"eval": {DATASET: {...}}`) gives
    `eval/DATASET/KEY`."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in _NOT_SCALARS or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[tag(key)] = float(value)
        elif isinstance(value, Mapping):
            out |= {f"{key}/{name}/{k}": float(v)
                    for name, sub in value.items() if isinstance(sub, Mapping)
                    for k, v in sub.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}
    return out


def require_tensorboard() -> type:
    """torch's SummaryWriter, or a one-line error saying what to install. Every rank calls
    it before training, so a missing package cannot stop rank 0 alone and hang the rest."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ReidError("--tensorboard needs the tensorboard package: "
                        "pip install 'reidcli[tensorboard]'") from None
    return SummaryWriter


class TensorBoardSink:
    def __init__(self, run: RunDir, kept: list[dict[str, Any]], step_key: str) -> None:
        summary_writer = require_tensorboard()
        folder = run.tensorboard_dir
        self.step_key = step_key
        logged_before = folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
        purge = None
        if logged_before:
            purge = max((int(r[step_key]) for r in kept), default=-1) + 1
        self.writer = summary_writer(str(folder), purge_step=purge)
        if not logged_before:
            for record in kept:
                self.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        step = int(record[self.step_key])
        for name, value in scalars(record).items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # live curves, and nothing lost if the run is interrupted

    def close(self) -> None:
        self.writer.close()


def metrics_sink(enabled: bool, run: RunDir, kept: list[dict[str, Any]],
                 step_key: str) -> MetricsSink:
    """Where a trainer sends each metrics record besides metrics.jsonl. `kept`: the records
    already in metrics.jsonl (those a resumed run keeps); `step_key`: the record field that
    is the step axis."""
    return TensorBoardSink(run, kept, step_key) if enabled else NoSink()
