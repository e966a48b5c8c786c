"""Atomic file writes: a crash never leaves a half-written artifact under the final name."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reidcli.utils.diskerrors import discard_h5, is_disk_full, write_failure
from reidcli.utils.faults import crash_point

log = logging.getLogger(__name__)


def current_umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask


def ensure_folder(folder: str | os.PathLike[str], option: str | None = None) -> None:
    """Create `folder` (and its parents), as a one-line error if that is impossible."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problem = write_failure(err, Path(folder) / ".", option=option)
        if problem is None:
            raise
        raise problem from err


# Temporary names carry the writer's host and process id, so that a later run can tell the
# leftovers of a dead process (removed by `remove_orphans`) from a live writer's file.
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[A-Za-z0-9_]{8}[^/]*$")
# What versions before the tag left (`.NAME.<8 random chars>.tmp`); no live writer makes
# these now.
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
    untagged ones (`.NAME.<8 random chars>.tmp`, what versions before the tag left) are
    removed only for the destination names in `legacy`.
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
    path: str | os.PathLike[str], suffix: str | None = None, *, durable: bool = False,
    needed: int | None = None,
) -> Iterator[Path]:
    """Yield a temporary path in the same folder as `path`; rename it over `path` on success.

    The temporary file lives in the destination folder so the final `os.replace` is a
    same-filesystem rename (atomic on POSIX); its name carries host and process id, and the
    first write into a folder removes what dead writers left there (`remove_orphans`). On
    any exception the temporary file is removed and `path` is left untouched; a full disk or
    a read-only folder becomes a one-line `OutputError` (`needed`, the expected size if
    known, goes into its message). `durable=True` also flushes the file to the disk before
    the rename and the folder after it, so the rename is a commit that survives a power cut.
    The file gets the permissions of a plain `open()` under the current umask (mkstemp
    would make it 0600 for good).
    """
    dest = Path(path)
    ensure_folder(dest.parent)
    _clean_once(dest.parent, dest.name)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{dest.name}.{_host()}-{os.getpid()}.",
            suffix=suffix if suffix is not None else ".tmp", dir=dest.parent,
        )
    except OSError as err:
        problem = write_failure(err, dest, needed)
        if problem is None:
            raise
        raise problem from err
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        crash_point("atomic.created", dest.name)
        yield tmp
        if durable:
            fsync_path(tmp)
        crash_point("atomic.written", dest.name)
        os.replace(tmp, dest)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        problem = write_failure(err, dest, needed) if isinstance(err, Exception) else None
        if problem is None:
            raise
        raise problem from err
    if durable:
        fsync_path(dest.parent)
    crash_point("atomic.renamed", dest.name)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class _KeepWriteError:
    """A file wrapper that remembers the OSError of a failed write: torch.save reports a full
    disk only as "unexpected pos ..." and drops the reason."""

    def __init__(self, file) -> None:  # noqa: ANN001 - any binary file object
        self.file = file
        self.error: OSError | None = None

    def write(self, data) -> int:  # noqa: ANN001 - bytes-like
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def atomic_torch_save(obj: object, path: str | os.PathLike[str]) -> None:
    """`torch.save(obj, path)` atomically; a full disk is an `OutputError`, not a traceback."""
    import torch

    with atomic_path(path) as tmp, tmp.open("wb") as f:
        writer = _KeepWriteError(f)
        try:
            torch.save(obj, writer)  # type: ignore[arg-type]
        except RuntimeError as err:
            if writer.error is not None:
                raise writer.error from err
            raise


def open_h5_for_writing(path: str | os.PathLike[str], mode: str = "w") -> Any:
    """`h5py.File(path, mode)` without a chunk cache, for every file reidcli writes.

    With the cache, a chunk is written when its dataset handle is garbage-collected; on a
    full disk that write fails inside a destructor, where it cannot be caught, and HDF5
    later crashes the process. Without it every write happens in the call that asked for
    it and fails there as an exception. Appends are no slower (docs/benchmarks.md, "HDF5
    writes without the chunk cache").
    """
    import h5py

    return h5py.File(path, mode, rdcc_nbytes=0)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike[str], needed: int | None = None, *,
              durable: bool = False) -> Iterator[Any]:
    """A new HDF5 file (h5py, mode "w") that replaces `path` atomically when the block ends
    (`durable`: as `atomic_path`).

    A failed write (full disk) discards the file before HDF5 retries its cached writes at
    close, which would otherwise crash the process (see `discard_h5`).
    """
    with atomic_path(path, suffix=".h5.tmp", needed=needed, durable=durable) as tmp:
        f = open_h5_for_writing(tmp)
        try:
            yield f
            # A failed flush leaves the file open and closable (see `discard_h5`); a close
            # that fails to write leaves HDF5 unable to close it ever again.
            f.flush()
            f.close()
        except BaseException as err:
            if is_disk_full(err):
                discard_h5(f, tmp)
            else:
                with contextlib.suppress(Exception):
                    f.close()
            raise


def json_with_keys(path: str | os.PathLike[str], keys: Iterable[str],
                   limit: int = 1 << 22) -> bool:
    """Whether `path` holds a JSON object with all of `keys` (how a command recognises a
    JSON file it wrote itself, and may replace); False for anything unreadable."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            data = json.loads(f.read(limit))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(keys) <= data.keys()
