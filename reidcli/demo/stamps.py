"""Per-stage stamps: a finished stage with unchanged inputs is not run again.

A stage's inputs are its settings plus the digests of the stages it reads from, so a change
anywhere upstream invalidates everything downstream. The stamp is written `running` before
the stage starts and `done` after it succeeds; a `running` stamp with the same digest means
the stage was interrupted and may be resumed (the training stages continue from their last
checkpoint).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidcli.utils.io import atomic_write_text

RUNNING = "running"
DONE = "done"


def digest(inputs: Mapping[str, Any]) -> str:
    """SHA-256 of the inputs as canonical JSON (sorted keys; tuples and lists alike)."""
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Stamp:
    stage: str
    digest: str
    status: str
    inputs: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


class StampStore:
    """Stamps as `FOLDER/STAGE.json`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, stage: str) -> Path:
        return self.folder / f"{stage}.json"

    def load(self, stage: str) -> Stamp | None:
        try:
            data = json.loads(self.path(stage).read_text(encoding="utf-8"))
            return Stamp(stage, data["digest"], data["status"], data.get("inputs", {}),
                         data.get("result", {}), float(data.get("seconds", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            # A missing or damaged stamp only means the stage runs again.
            return None

    def _write(self, stamp: Stamp) -> None:
        payload = {"stage": stamp.stage, "digest": stamp.digest, "status": stamp.status,
                   "inputs": stamp.inputs, "result": stamp.result, "seconds": stamp.seconds,
                   "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_text(self.path(stamp.stage),
                          json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")

    def started(self, stage: str, inputs: Mapping[str, Any]) -> None:
        self._write(Stamp(stage, digest(inputs), RUNNING, dict(inputs)))

    def done(self, stage: str, inputs: Mapping[str, Any], result: Mapping[str, Any],
             seconds: float) -> Stamp:
        stamp = Stamp(stage, digest(inputs), DONE, dict(inputs), dict(result), seconds)
        self._write(stamp)
        return stamp

    def finished(self, stage: str, inputs: Mapping[str, Any]) -> Stamp | None:
        """The stamp if the stage finished with exactly these inputs."""
        stamp = self.load(stage)
        if stamp is not None and stamp.status == DONE and stamp.digest == digest(inputs):
            return stamp
        return None

    def interrupted(self, stage: str, inputs: Mapping[str, Any]) -> bool:
        """Whether the stage started with these inputs and did not finish."""
        stamp = self.load(stage)
        return stamp is not None and stamp.status == RUNNING and stamp.digest == digest(inputs)
