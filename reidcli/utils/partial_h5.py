"""The life of a streamed, resumable HDF5 artifact (feature banks, CFS score files).

An HDF5 file extended in place is not crash-safe: a kill in the middle of an append can leave
its metadata or its global heap (where variable-length strings live) inconsistent, and
nothing in the file says so. So an unfinished artifact is not a growing HDF5 file but a hidden
folder of immutable chunk files beside the destination:

    .NAME.partial/
      manifest.json      what is being written (format, inputs); written first, atomically
      chunk-000000.h5    the rows appended between two checkpoints, one group per table
      chunk-000001.h5    (attribute `start` of each group: its first row in the table)

`append()` buffers rows in memory (validated first, so a failed append buffers nothing);
`checkpoint()` writes the buffered rows to a new chunk under a temporary name, flushes it to
the disk, and renames it to its numbered name, then flushes the folder: the rename is the
commit. `finish()` checkpoints, merges the chunks into the final file (written beside the
destination, flushed, renamed over it) and removes the folder. A kill at any instant leaves
committed chunks that are whole, plus at most one temporary file that the next run deletes.

A resumed writer (`resume=True`) reads every chunk back in order and keeps the longest prefix
that verifies (readable, same columns and types, consistent lengths, rows continuing the
previous chunk); a damaged chunk and all after it are deleted with a one-line warning. A
manifest of other inputs, one that cannot be read, or a partial file of an older version
starts the artifact over, again with a one-line warning saying which.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from reidcli.errors import ReidError
from reidcli.utils.faults import crash_point
from reidcli.utils.io import atomic_h5, atomic_path, fsync_path, remove_orphans

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_CHUNK = re.compile(r"^chunk-(\d{6})\.h5$")
_STR = h5py.string_dtype("utf-8")
STRING = "str"
"""Schema type of a column of UTF-8 strings."""
BUFFER_BYTES = 64 * 2**20
"""Buffered rows beyond this size are checkpointed without waiting for `checkpoint()`."""

# column name -> (dtype name or STRING, shape of one row)
Schema = dict[str, tuple[str, tuple[int, ...]]]


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where an unfinished artifact lives: hidden, same folder (same filesystem), fixed name."""
    dest = Path(path)
    return dest.with_name(f".{dest.name}.partial")


def remove_partial(path: str | os.PathLike[str]) -> None:
    """Forget the unfinished artifact of `path` (folder, or a file of an older version)."""
    tmp = partial_path(path)
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp)
    else:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _column_schema(data: Any) -> tuple[Any, tuple[str, tuple[int, ...]]]:
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OUS":
        return data, (data.dtype.str, tuple(int(x) for x in data.shape[1:]))
    return [str(x) for x in data], (STRING, ())


class _Damaged(Exception):
    """A chunk that does not verify; the message says why."""


class PartialH5Writer:
    """Base of the streaming writers: rows of named tables, committed in chunk files.

    Subclasses give the final layout (`_table_group`, `_h5_chunks`, `_final_attrs`) and call
    `_append_rows(table, columns)`. `identity` is what a resumed partial must match (the
    inputs and settings the rows were computed from).

    `keep_rows_on_error`: whether leaving the `with` block on an exception first commits
    the rows appended since the last checkpoint (right when every append is a whole,
    consistent batch) or only keeps what explicit checkpoints covered.
    """

    keep_rows_on_error = False
    what = "writer"
    fmt = ""
    error: type[ReidError] = ReidError

    def __init__(self, path: str | os.PathLike[str], *, identity: Mapping[str, Any],
                 resume: bool, keep_partial: bool) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.keep_partial = keep_partial
        self.identity = _jsonable({"format": self.fmt, **identity})
        self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self._schema: dict[str, Schema] = {}
        self._committed: dict[str, int] = {}
        self._pending: dict[str, dict[str, list[Any]]] = {}
        self._pending_bytes = 0
        self._next = 0
        self._open = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(self.path.parent, (self.path.name,))  # e.g. a dead run's final temp
        if not (resume and self._resume()):
            self._start()

    # -- the partial folder ----------------------------------------------------------------
    def _start(self) -> None:
        remove_partial(self.path)
        self._schema, self._committed, self._next = {}, {}, 0
        self.tmp.mkdir()
        manifest = {"identity": self.identity, "created": self.created}
        with atomic_path(self.tmp / MANIFEST, durable=True) as t:
            t.write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
        fsync_path(self.path.parent)

    def _resume(self) -> bool:
        """Continue the partial folder if it holds these inputs; False to start over."""
        if not self.tmp.exists():
            return False
        if not self.tmp.is_dir():
            log.warning("%s is a partial file of an older reidcli version, which cannot be "
                        "resumed safely; starting over", self.tmp)
            return False
        try:
            manifest = json.loads((self.tmp / MANIFEST).read_text(encoding="utf-8"))
            identity, created = manifest["identity"], str(manifest["created"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("partial %s %s cannot be trusted (its %s is unreadable: %s); "
                        "starting over", self.what, self.tmp, MANIFEST, err)
            return False
        if identity != self.identity:
            log.warning("discarding partial %s %s: it was written with other inputs or "
                        "settings", self.what, self.tmp)
            return False
        self.created = created
        remove_orphans(self.tmp)
        for seq, chunk in self._chunk_files():
            if seq != self._next:
                self._drop_from(chunk, f"chunk {self._next:06d} is missing")
                break
            try:
                self._verify(chunk)
            except _Damaged as err:
                self._drop_from(chunk, str(err))
                break
            self._next += 1
        log.info("resuming %s: %s", self.tmp, ", ".join(
            f"{k}={v}" for k, v in self._committed.items()) or "empty")
        return True

    def _chunk_files(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.tmp.iterdir():
            m = _CHUNK.match(p.name)
            if m is not None:
                found.append((int(m[1]), p))
        return sorted(found)

    def _drop_from(self, chunk: Path, why: str) -> None:
        rows = ", ".join(f"{k}={v}" for k, v in self._committed.items()) or "none"
        log.warning("partial %s %s: %s (%s); keeping the rows before it (%s)",
                    self.what, self.tmp, chunk.name, why, rows)
        for seq, p in self._chunk_files():
            if seq >= self._next:
                p.unlink()

    def _verify(self, chunk: Path) -> None:
        """Check one chunk against the schema so far and count its rows in."""
        counts: dict[str, int] = {}
        schema = {k: dict(v) for k, v in self._schema.items()}
        try:
            with h5py.File(chunk, "r") as f:
                for table, group in f.items():
                    cols: Schema = {}
                    lengths = set()
                    for col, ds in group.items():
                        data = ds[...]  # reading every row is the verification
                        kind = STRING if h5py.check_string_dtype(ds.dtype) else ds.dtype.str
                        cols[col] = (kind, tuple(int(x) for x in data.shape[1:]))
                        lengths.add(len(data))
                    if len(lengths) > 1:
                        raise _Damaged(f"table {table!r} has columns of lengths {lengths}")
                    if schema.setdefault(table, cols) != cols:
                        raise _Damaged(f"table {table!r} changed its columns or types")
                    start = int(group.attrs["start"])
                    if start != self._committed.get(table, 0):
                        raise _Damaged(f"table {table!r} starts at row {start}, expected "
                                       f"{self._committed.get(table, 0)}")
                    counts[table] = lengths.pop() if lengths else 0
        except _Damaged:
            raise
        except Exception as err:  # h5py reports damage as OSError, KeyError, ValueError...
            raise _Damaged(f"unreadable: {err}") from None
        self._schema = schema
        for table, n in counts.items():
            self._committed[table] = self._committed.get(table, 0) + n

    # -- rows ------------------------------------------------------------------------------
    def _open_check(self) -> None:
        if not self._open:
            raise self.error(f"the {self.what} is already closed")

    def table_schema(self, table: str) -> Schema | None:
        """Columns of `table` so far (committed or buffered), or None if it has no rows yet."""
        return self._schema.get(table)

    def _append_rows(self, table: str, columns: Mapping[str, Any]) -> None:
        """Buffer whole rows of `table`; every column has the same length (checked by caller)."""
        self._open_check()
        prepared: dict[str, Any] = {}
        cols: Schema = {}
        for name, data in columns.items():
            prepared[name], cols[name] = _column_schema(data)
        known = self._schema.get(table)
        if known is not None and known != cols:
            raise self.error(f"table {table!r}: columns {cols} differ from {known}")
        self._schema[table] = cols
        pending = self._pending.setdefault(table, {name: [] for name in cols})
        for name, data in prepared.items():
            pending[name].append(data)
            self._pending_bytes += data.nbytes if isinstance(data, np.ndarray) else sum(
                len(s) for s in data)
        if self._pending_bytes > BUFFER_BYTES:
            self.checkpoint()

    def _pending_rows(self) -> dict[str, int]:
        return {t: sum(len(p) for p in next(iter(cols.values()), [])) if cols else 0
                for t, cols in self._pending.items()}

    def _commit_pending(self) -> None:
        """Write the buffered rows as the next chunk (nothing if none are buffered)."""
        self._open_check()
        if not self._pending:
            return
        chunk = self.tmp / f"chunk-{self._next:06d}.h5"
        rows = self._pending_rows()
        with atomic_h5(chunk, durable=True) as f:
            for table, cols in self._pending.items():
                g = f.create_group(table)
                g.attrs["start"] = self._committed.get(table, 0)
                for name, parts in cols.items():
                    kind, shape = self._schema[table][name]
                    if kind == STRING:
                        g.create_dataset(name, data=[s for p in parts for s in p], dtype=_STR)
                    else:
                        data = np.concatenate(parts) if parts else np.empty((0, *shape), kind)
                        g.create_dataset(name, data=data)
                crash_point("partial.chunk-open", self.path.name)
        crash_point("partial.chunk-committed", self.path.name)
        self._next += 1
        for table, n in rows.items():
            self._committed[table] = self._committed.get(table, 0) + n
        self._pending.clear()
        self._pending_bytes = 0

    # -- final file ------------------------------------------------------------------------
    def _table_group(self, f: h5py.File, table: str) -> h5py.Group:
        """Where `table`'s columns go in the final file (default: a group of that name)."""
        return f.create_group(table)

    def _h5_chunks(self, column: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """HDF5 chunk shape of a final column."""
        return (1024, *shape)

    def _final_attrs(self) -> dict[str, Any]:
        """Root attributes of the final file."""
        return {}

    def _iter_chunks(self) -> Iterator[h5py.File]:
        for _, chunk in self._chunk_files():
            with h5py.File(chunk, "r") as f:
                yield f

    @property
    def rows_done(self) -> Any:
        """Committed rows: what a resumed run skips (subclasses give them their shape)."""
        return dict(self._committed)

    def checkpoint(self) -> Any:
        """Commit every row appended so far (one chunk file); return `rows_done`."""
        self._commit_pending()
        return self.rows_done

    def finish(self) -> Path:
        """Checkpoint, merge the chunks into the final file (atomically), drop the folder."""
        try:
            self._merge()
        except BaseException:
            self.abort()
            raise
        self._open = False
        remove_partial(self.path)
        return self.path

    def _merge(self) -> None:
        self.checkpoint()
        with atomic_h5(self.path, durable=True) as out:
            for key, value in self._final_attrs().items():
                if value is not None:
                    out.attrs[key] = value
            dsets = {}
            for table, cols in self._schema.items():
                g = self._table_group(out, table)
                n = self._committed.get(table, 0)
                for name, (kind, shape) in cols.items():
                    dtype = _STR if kind == STRING else np.dtype(kind)
                    dsets[table, name] = g.create_dataset(
                        name, (n, *shape), dtype, maxshape=(None, *shape),
                        chunks=self._h5_chunks(name, shape))
            for chunk in self._iter_chunks():
                for table, group in chunk.items():
                    start = int(group.attrs["start"])
                    for name, ds in group.items():
                        dsets[table, name][start:start + len(ds)] = ds[...]
            crash_point("partial.final-open", self.path.name)
        crash_point("partial.final-renamed", self.path.name)

    def abort(self) -> None:
        """Stop without finishing; the partial folder is kept only if `keep_partial`."""
        self._open = False
        self._pending.clear()
        if not self.keep_partial:
            remove_partial(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            if self._open:
                self.finish()
            return
        if self.keep_rows_on_error and self.keep_partial and self._open:
            try:
                self.checkpoint()
            except Exception as err:  # keep the original error; these rows are simply redone
                log.warning("could not save the last rows of %s: %s", self.tmp, err)
        self.abort()

