"""The operating system's write failures (full disk, read-only folder) as one-line errors.

Libraries report the same failure in different shapes: Python raises `OSError(ENOSPC)`,
HDF5 a `RuntimeError`/`OSError` whose message holds `errno = 28`, safetensors `... (os
error 28)`. `write_failure` recognises them all and says which file could not be written
and, for a full disk, how much space is free (and needed, when the size is known).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any

from reidcli.errors import OutputError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)|\[Errno (\d+)\]|os error (\d+)")


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Free space of the file system holding `folder` (its nearest existing ancestor)."""
    here = Path(folder).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        return shutil.disk_usage(here).free
    except OSError:
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_free_space(path: str | os.PathLike[str], needed: int, option: str = "-o") -> None:
    """Refuse to start writing `needed` bytes at `path` when its disk has less free."""
    free = free_bytes(Path(path).parent)
    if free is not None and needed > free:
        raise OutputError(
            f"not enough space for {path}: it needs about {human_bytes(needed)} and "
            f"{Path(path).parent.absolute()} has {human_bytes(free)} free; free some space "
            f"or choose another {option}")


def error_number(err: BaseException) -> int | None:
    """The errno behind `err`, from its attribute or (HDF5, safetensors) its message."""
    code = getattr(err, "errno", None)
    if isinstance(code, int):
        return code
    m = _ERRNO_IN_TEXT.search(str(err))
    return int(next(g for g in m.groups() if g)) if m else None


def is_disk_full(err: BaseException) -> bool:
    return error_number(err) in _NO_SPACE


def write_failure(err: BaseException, path: str | os.PathLike[str],
                  needed: int | None = None, option: str | None = None,
                  within: str | os.PathLike[str] | None = None) -> OutputError | None:
    """A one-line error for a failed write of `path`, or None if `err` is something else.

    `within`: the (staging) folder whose files are written for `path`, if any.
    """
    if isinstance(err, OutputError):
        return err
    code = error_number(err)
    where = Path(path)
    culprit = getattr(err, "filename", None)
    if culprit and not _concerns(Path(culprit).absolute(), where.absolute()) and not (
            within is not None and Path(within).absolute() in Path(culprit).absolute().parents):
        return None  # about another file (an input, say), not the one being written
    elsewhere = f"choose another {option}" if option else "write elsewhere"
    if code in _NO_SPACE:
        free = free_bytes(where.parent)
        have = f"; {where.parent.absolute()} has {human_bytes(free)} free" if free is not None \
            else ""
        need = f", it needs about {human_bytes(needed)}" if needed else ""
        what = "the file size limit was reached" if code == errno.EFBIG else "the disk is full"
        return OutputError(f"cannot write {where}: {what}{need}{have}; nothing was written "
                           f"under that name; free some space or {elsewhere}")
    if code in _NOT_WRITABLE:
        why = "read-only file system" if code == errno.EROFS else "permission denied"
        return OutputError(f"cannot write {where}: {why} ({where.parent.absolute()} is not "
                           f"writable); {elsewhere}")
    return None


def _concerns(culprit: Path, target: Path) -> bool:
    """Whether an error about `culprit` is about writing `target` (it, a sibling temporary
    file, or a folder on its way)."""
    return culprit == target or culprit.parent == target.parent or culprit in target.parents


def discard_h5(file: Any, path: str | os.PathLike[str]) -> None:
    """Close an h5py file whose writes failed, then delete it.

    HDF5 keeps the unwritten chunks and metadata in its cache and writes them again when the
    file is closed; on a full disk that fails again, the file stays open, and the library
    crashes the process at exit (a segfault). Pointing the file's descriptor at /dev/null
    first lets that last flush succeed harmlessly; the file is then removed.
    """
    with contextlib.suppress(Exception):
        handle = file.id.get_vfd_handle()
        if isinstance(handle, int) and handle >= 0:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, handle)
            os.close(null)
    with contextlib.suppress(Exception):
        file.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
