"""Named crash points: make the process die hard at a chosen write point, for fault tests.

With `REIDCLI_CRASH_AT=POINT` in the environment, the process calls `os._exit(CRASH_EXIT)`
(no cleanup, no `finally`, no flushing: what `kill -9` does, minus the signal) the first time
it reaches `POINT`. `POINT` is a point name (`atomic.written`) or a point name and the file
it writes (`atomic.written:trainer.pt`); `POINT@N` dies at the N-th time instead. The points
are listed in docs/reliability.md. Without the variable a crash point costs one dictionary
lookup.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

ENV = "REIDCLI_CRASH_AT"
CRASH_EXIT = 86
"""Exit status of a process stopped at a crash point (distinct from errors 1 and 2)."""

_hits: Counter[str] = Counter()


def crash_point(name: str, target: str | None = None) -> None:
    """Die here if `REIDCLI_CRASH_AT` names this point (and this target, when it names one)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    want, _, nth = spec.partition("@")
    full = f"{name}:{target}" if target is not None else name
    if want not in (name, full):
        return
    _hits[want] += 1
    if _hits[want] >= int(nth or 1):
        sys.stderr.write(f"reidcli: stopped at crash point {full} ({ENV}={spec})\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT)
