"""Exclusive locks on outputs: two runs never write the same run directory or file at once.

The lock is an OS file lock (`flock`) on a hidden file beside the output, `.NAME.lock`,
held for the life of the run; the kernel releases it when the process dies, however it
dies, so a crashed run never leaves a stale lock. The lock file records who holds it
(pid, host, start time, command) for the error the next run prints. Locks are re-entrant
within a process (a stage calling another stage's library function on the same output).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from reidcli.errors import OutputError
from reidcli.utils.diskerrors import write_failure
from reidcli.utils.io import ensure_folder

log = logging.getLogger(__name__)

_held: dict[Path, int] = {}
"""Lock files this process holds -> nesting depth."""


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The lock file of `output`: beside it, so it also covers a folder that is replaced
    whole by a rename (`reid synth`). Links are resolved: every spelling of one output
    shares one lock."""
    dest = Path(os.path.realpath(output))
    return dest.parent / f".{dest.name}.lock"


def _holder() -> str:
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.name  # -m reidcli
    sub = next((a for a in sys.argv[1:] if not a.startswith("-")), "")  # the subcommand
    command = f"{name} {sub}".strip()
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started,
                       "command": command})


def describe_holder(text: str) -> str:
    """'pid 12 on host h since 2026-01-01 10:00:00 UTC (reid finetune)' from a lock file."""
    try:
        info = json.loads(text)
        return (f"pid {info['pid']} on host {info['host']} since {info['started']} "
                f"({info['command']})")
    except (ValueError, KeyError, TypeError):
        return "another process (it has not recorded itself yet)"


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    return ""


def _open(path: Path, output: Path, option: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as err:
        problem = write_failure(err, output, option=option)
        if problem is None:
            raise
        raise problem from err


def _acquire(path: Path, output: Path, option: str) -> int | None:
    """The locked file descriptor, or None where the file system has no locks."""
    while True:
        fd = _open(path, output, option)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(_read(fd))
            os.close(fd)
            raise OutputError(f"{output} is being written by another run: {holder}; wait for "
                              f"it to finish or choose another {option}") from None
        except OSError as err:  # e.g. ENOLCK on a network file system without lock support
            os.close(fd)
            log.warning("cannot lock %s (%s): a second run writing there at the same time "
                        "would not be detected", output, err)
            return None
        # A holder that was finishing may have removed the file between our open and flock:
        # then we hold a lock on a deleted file and must start over.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder().encode(), 0)
            return fd
        os.close(fd)


@contextlib.contextmanager
def output_lock(output: str | os.PathLike[str], option: str = "-o") -> Iterator[Path]:
    """Hold the exclusive lock of `output` for the `with` block; a second holder fails at
    once with an `OutputError` naming the first. Yields the lock file's path."""
    path = lock_path(output)
    if path in _held:
        _held[path] += 1
        try:
            yield path
        finally:
            _held[path] -= 1
        return
    ensure_folder(path.parent, option)
    fd = _acquire(path, Path(output), option)
    _held[path] = 1
    try:
        yield path
    finally:
        del _held[path]
        if fd is not None:
            # Removed while still locked, so no other run can lock this file afterwards.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)
