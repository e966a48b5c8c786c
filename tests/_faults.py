"""Fault-injection helpers: run a child process that dies at a crash point or is killed.

Run as a script, this file is also the child of the writer tests:
`python tests/_faults.py bank|scores OUT [DELAY_S]` writes a deterministic bank or scores
file through the resumable writer, resuming whatever partial folder OUT has, and prints
`ready` once the writer is open (the random-kill test waits for it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from reidcli.utils.faults import CRASH_EXIT, ENV

ROOT = Path(__file__).resolve().parents[1]
BATCH = 3
CHECKPOINT_EVERY = 2  # batches
SPLITS = {"query": 7, "gallery": 40}
SCORE_ROWS = 50


def child_env(crash_at: str | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400", OMP_NUM_THREADS="1")
    env.pop(ENV, None)
    if crash_at is not None:
        env[ENV] = crash_at
    return env


def run(args: list[str], crash_at: str | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess:
    """Run `python ARGS` (e.g. `-m reidcli extract ...`); crash at `crash_at` if given."""
    return subprocess.run([sys.executable, *args], env=child_env(crash_at), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def reid(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    return run(["-m", "reidcli", *args], crash_at)


def expect_crash(result: subprocess.CompletedProcess, point: str) -> None:
    assert result.returncode == CRASH_EXIT, (point, result.returncode, result.stderr[-3000:])
    assert "stopped at crash point" in result.stderr


def expect_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])


def h5_content(path: Path, skip_attrs: tuple[str, ...] = ("created",)) -> dict[str, object]:
    """Every dataset and attribute of an HDF5 file, for equality checks."""
    out: dict[str, object] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = (obj.dtype.str, obj[...].tolist())
        attrs = {k: v for k, v in obj.attrs.items() if k not in skip_attrs}  # type: ignore[attr-defined]
        out[f"{name}@attrs"] = {k: np.asarray(v).tolist() for k, v in attrs.items()}

    with h5py.File(path, "r") as f:
        visit("/", f)
        f.visititems(visit)
    return out


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Names in `folder` other than `keep` (temp files, partial folders). A killed run's lock
    file (`.NAME.lock`) is not one: it holds no data, the kernel released its lock, and the
    next run takes it over and removes it."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in keep and not (p.name.startswith(".") and
                                                 p.name.endswith(".lock")))


# -- the child writer --------------------------------------------------------------------
def _feats(split: str, lo: int, hi: int) -> np.ndarray:
    i = np.arange(lo, hi, dtype=np.float32)[:, None]
    return np.sin(i * (np.arange(16, dtype=np.float32) + len(split)))


def _paths(split: str, lo: int, hi: int) -> list[str]:
    return [f"{split}/ü{i:05d}.jpg" for i in range(lo, hi)]


def _write_bank(out: Path, delay: float) -> None:
    from reidcli.retrieval.bank import BankWriter

    with BankWriter(out, attrs={"model": "m", "dataset": "d"}, dtype="float16", resume=True,
                    keep_partial=True) as w:
        print("ready", flush=True)
        for split, n in SPLITS.items():
            done = w.rows_done.get(split, 0)
            for step, lo in enumerate(range(done, n, BATCH), start=1):
                hi = min(n, lo + BATCH)
                rows = np.arange(lo, hi)
                w.append(split, _feats(split, lo, hi), rows // 2, rows % 3, _paths(split, lo, hi),
                         rows % 2)
                if step % CHECKPOINT_EVERY == 0:
                    w.checkpoint()
                time.sleep(delay)
            w.checkpoint()


def _write_scores(out: Path, delay: float) -> None:
    from reidcli.selection.scorefile import ScoreWriter

    with ScoreWriter(out, attrs={"source": "s"}, resume=True, keep_partial=True) as w:
        print("ready", flush=True)
        for step, lo in enumerate(range(w.rows_done, SCORE_ROWS, BATCH), start=1):
            hi = min(SCORE_ROWS, lo + BATCH)
            w.append(np.cos(np.arange(lo, hi, dtype=np.float32)), _paths("s", lo, hi))
            if step % CHECKPOINT_EVERY == 0:
                w.checkpoint()
            time.sleep(delay)


if __name__ == "__main__":
    kind, target = sys.argv[1], Path(sys.argv[2])
    pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    (_write_bank if kind == "bank" else _write_scores)(target, pause)
