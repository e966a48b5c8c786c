"""Atomic file writes: a crash never leaves a half-written artifact under the final name."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from reidcli.utils.faults import crash_point

log = logging.getLogger(__name__)

# Temporary names carry the writer's host and process id, so that a later run can tell the
# leftovers of a dead process (removed by `remove_orphans`) from a live writer's file.
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[A-Za-z0-9_]{8}[^/]*$")
# What versions before the tag left (`.NAME.XXXXXXXX.tmp`); no live writer makes these now.
_LEGACY_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}(\.h5)?\.tmp$")
_cleaned: set[str] = set()


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_orphans(folder: str | os.PathLike[str], legacy: Iterable[str] = ()) -> list[Path]:
    """Delete the temporary files that dead writers left in `folder`; return what went.

    A temporary file of this host whose process is gone can belong to no running write;
    untagged ones (`.NAME.XXXXXXXX.tmp`, what versions before the tag left) are removed only
    for the destination names in `legacy`.
    """
    removed: list[Path] = []
    host = _host()
    prefixes = tuple(f".{name}." for name in legacy)
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            m = _TEMP.match(entry.name)
            if m is not None:
                orphan = m["host"] == host and not _alive(int(m["pid"]))
            else:
                orphan = (entry.name.startswith(prefixes) and
                          _LEGACY_TEMP.match(entry.name) is not None)
            if orphan and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) that an interrupted run left in %s: %s",
                 len(removed), folder, ", ".join(p.name for p in removed))
    return removed


def _clean_once(folder: Path, name: str) -> None:
    # One scan per folder and process: orphans are what runs before this one left.
    key = str(folder.resolve())
    if key not in _cleaned:
        _cleaned.add(key)
        remove_orphans(folder, (name,))


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], suffix: str | None = None, *, durable: bool = False
) -> Iterator[Path]:
    """Yield a temporary path in the same folder as `path`; rename it over `path` on success.

    The temporary file lives in the destination folder so the final `os.replace` is a
    same-filesystem rename (atomic on POSIX); its name carries host and process id, and the
    first write into a folder removes what dead writers left there (`remove_orphans`). On
    any exception the temporary file is removed and `path` is left untouched.
    `durable=True` also flushes the file to the disk before the rename and the folder after
    it, so the rename is a commit that survives a power cut.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_once(dest.parent, dest.name)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.{_host()}-{os.getpid()}.",
        suffix=suffix if suffix is not None else ".tmp", dir=dest.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        crash_point("atomic.created", dest.name)
        yield tmp
        if durable:
            fsync_path(tmp)
        crash_point("atomic.written", dest.name)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        fsync_path(dest.parent)
    crash_point("atomic.renamed", dest.name)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
