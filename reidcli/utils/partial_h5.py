"""The life of a streamed, resumable HDF5 artifact (feature banks, CFS score files).

Rows are appended to a hidden partial file beside the destination; `checkpoint()` marks
what is complete (a `committed` attribute), `finish()` renames the partial file over the
destination (atomic), and a run that stops early leaves the partial file for the next run
to resume from its last checkpoint. A crash therefore never leaves a half artifact under
the final name.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Self

import h5py

from reidcli.errors import ReidError
from reidcli.utils.diskerrors import discard_h5, is_disk_full, write_failure


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an unfinished artifact lives: hidden, same folder (same filesystem), fixed name."""
    dest = Path(path)
    return dest.with_name(f".{dest.name}.partial")


class PartialH5Writer:
    """Base of the streaming writers: subclasses create/reopen `self._file` and implement
    `checkpoint()` (setting `committed` attributes) and `_uncommit()` (removing them).

    `keep_rows_on_error`: whether leaving the `with` block on an exception first commits
    the rows appended since the last checkpoint (right when every append is a whole,
    consistent batch) or only keeps what explicit checkpoints covered.
    """

    keep_rows_on_error = False
    what = "writer"
    error: type[ReidError] = ReidError

    def __init__(self, path: str | os.PathLike[str], keep_partial: bool) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.keep_partial = keep_partial
        self._file: h5py.File | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def checkpoint(self) -> Any:
        raise TypeError(f"{type(self).__name__} must implement checkpoint()")

    def _uncommit(self) -> None:
        """Remove the `committed` markers before the file becomes final."""

    def _open_file(self) -> h5py.File:
        if self._file is None:
            raise self.error(f"the {self.what} is already closed")
        return self._file

    def finish(self) -> Path:
        """Checkpoint, close and atomically move the file to its final path."""
        self._open_file()
        self.checkpoint()
        self._uncommit()
        assert self._file is not None
        self._file.flush()  # a write that fails here can still be discarded (`discard_h5`)
        self._file.close()
        self._file = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self, error: BaseException | None = None) -> None:
        """Close without finishing; the partial file is kept only if `keep_partial` (and
        the failure was not a full disk, after which its content cannot be trusted)."""
        if self._file is not None and error is not None and is_disk_full(error):
            discard_h5(self._file, self.tmp)
            self._file = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self.keep_partial:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            if exc_type is None:
                if self._file is not None:
                    self.finish()
                return
            if (self.keep_rows_on_error and self.keep_partial and self._file is not None
                    and not is_disk_full(exc)):  # type: ignore[arg-type]
                self.checkpoint()
        except Exception as err:
            self.abort(err)
            self._raise_reported(err)
            raise
        self.abort(exc)
        self._raise_reported(exc)  # type: ignore[arg-type]

    def _raise_reported(self, err: BaseException) -> None:
        """A full disk or a read-only folder becomes a one-line error naming the file."""
        problem = write_failure(err, self.path) if isinstance(err, Exception) else None
        if problem is not None and problem is not err:
            raise problem from err
