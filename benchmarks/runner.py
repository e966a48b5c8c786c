"""Running `reid` commands from the benchmark scripts: echoed, measured, cached by command.

Every command is printed as it would be typed (so it can be copy-pasted), runs as a child
process with its output in a log file, and is skipped when its run directory already holds
a finished run of the very same command (an interrupted benchmark restarts where it stopped).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from reidcli.runtime.rundir import WEIGHTS_NAME, RunDir
from reidcli.utils.io import atomic_write_text

REID = str(Path(sys.executable).with_name("reid"))
T = TypeVar("T")
R = TypeVar("R")


def shown(cmd: list[str]) -> str:
    """The command as a user types it: `reid ...`, not the venv's absolute path."""
    return shlex.join(["reid", *cmd[1:]] if cmd and cmd[0] == REID else cmd)


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Run one command, echoing it; returns wall, CPU seconds and peak RSS (GiB)."""
    prefix = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"\n$ {prefix} {shown(cmd)}".replace("$  ", "$ "), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=os.environ | env, stdout=out,
                                stderr=subprocess.STDOUT)
        # wait4 gives this child's own rusage: RUSAGE_CHILDREN would mix all commands run
        # so far. Its ru_maxrss is the largest single process of the tree (main process or
        # a DataLoader worker that it waited for), not their sum.
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed with exit code {code}: {shown(cmd)}\nsee {log}")
    stats = {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
             "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}
    print(f"  -> {stats}", flush=True)
    return stats


def cached(target: Path, cmd: list[str], cwd: Path, env: dict[str, str],
           done: Callable[[Path], bool] | None = None) -> dict[str, float]:
    """Run `cmd`, which creates `target`, unless `target` is finished from the same command.

    The stamp `target.cmd.json` beside the target records the command and its cost; `done`
    says whether the target is complete (default: it exists).
    """
    stamp = target.parent / f"{target.name}.cmd.json"
    complete = done or (lambda p: p.exists())
    if complete(target) and stamp.is_file():
        saved = json.loads(stamp.read_text())
        if saved.get("cmd") == cmd[1:]:
            print(f"\n(reusing {target.name}: {shown(cmd)})", flush=True)
            return saved["stats"]
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    stats = run(cmd, cwd, env, target.parent / f"{target.name}.log")
    atomic_write_text(stamp, json.dumps({"cmd": cmd[1:], "stats": stats}))
    return stats


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (fine-tuning or pre-training)."""
    return RunDir(run_dir).read_metrics()


def run_model(run_dir: Path) -> bool:
    """A finished `reid pretrain` / `reid finetune` run: final model and metrics written."""
    run = RunDir(run_dir)
    return (run.root / WEIGHTS_NAME).is_file() and run.metrics_path.is_file()


def parallel(jobs: int, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`fn` over `items`, `jobs` at a time (threads waiting on child processes)."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(fn, items))
