"""HDF5 feature banks: the contract between `extract`, `evaluate`, `rerank` and `cfs-filter`.

Layout (see docs/formats.md): root attributes `format = "reid-feature-bank"`, `version = 1`
plus optional provenance; one group per split with `feats` (N x D float32/float16), `pids`
(int64, -1 = unlabelled/junk), `camids` (int64), `paths` (UTF-8 strings), optional `viewids`.

Reading is lazy: opening a bank validates its structure and loads the small label arrays, but
features (and paths) are read only when asked for, so a multi-million-row `source` split costs
nothing until it is used. Writing streams: `BankWriter` commits rows in chunk files of a hidden
partial folder next to the destination and writes the bank (renamed over the destination)
only when finished, so a crash never leaves a half bank under the final name, and an
interrupted extraction resumes from its last checkpoint whatever instant it was killed at.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from reidcli.errors import BankError
from reidcli.utils.closing import Closing
from reidcli.utils.partial_h5 import PartialH5Writer

log = logging.getLogger(__name__)

BANK_FORMAT = "reid-feature-bank"
BANK_VERSION = 1
PROVENANCE_KEYS = ("model", "checkpoint_sha256", "dataset", "created", "normalized", "flip")
REQUIRED_DATASETS = ("feats", "pids", "camids", "paths")
FEATURE_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
# Rows per HDF5 chunk: large enough for fast sequential reads, small enough that appending a
# few images does not rewrite megabytes.
_CHUNK_ROWS = 1024


def check_finite(feats: np.ndarray, split: str, offset: int = 0, total: int | None = None) -> None:
    """Raise `BankError` naming the split and the number of rows holding NaN or inf."""
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + offset
        of = f" of {total}" if total is not None else ""
        raise BankError(
            f"split {split!r}: {int(bad.sum())}{of} feature rows contain NaN or inf "
            f"(first at row {first})"
        )


@dataclass
class Split:
    """One split of a bank. `feats` and `paths` may be lazy h5py datasets or arrays."""

    name: str
    feats: Any
    pids: np.ndarray
    camids: np.ndarray
    paths: Any
    viewids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pids)

    @property
    def dim(self) -> int:
        return int(self.feats.shape[1])

    def read_features(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows [start, stop) as float32, checked for NaN/inf."""
        stop = len(self) if stop is None else min(stop, len(self))
        out = np.asarray(self.feats[start:stop], dtype=np.float32)
        check_finite(out, self.name, offset=start, total=len(self))
        return out

    def iter_features(self, chunk_rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """(start row, float32 block) pairs, so huge splits stream with bounded memory."""
        for start in range(0, len(self), chunk_rows):
            yield start, self.read_features(start, start + chunk_rows)

    def read_paths(self) -> list[str]:
        raw = self.paths[:] if hasattr(self.paths, "shape") else self.paths
        return [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in raw]

    def load(self) -> Split:
        """An in-memory copy (features as stored dtype, paths as a list)."""
        return Split(self.name, np.asarray(self.feats[:]), self.pids, self.camids,
                     self.read_paths(), self.viewids)


def check_comparable(query: Split, gallery: Split, path: Any = None) -> None:
    """Raise `BankError` unless both splits have rows and features of one size (distances
    between them are defined), naming the bank and both splits."""
    where = f"{path}: " if path else ""
    if len(query) == 0 or len(gallery) == 0:
        raise BankError(f"{where}split {query.name!r} has {len(query)} rows and "
                        f"{gallery.name!r} {len(gallery)}; both need at least one")
    if query.dim != gallery.dim:
        raise BankError(f"{where}split {query.name!r} has {query.dim}-dimensional features, "
                        f"{gallery.name!r} {gallery.dim}: they come from different models")


@dataclass
class FeatureBank(Closing):
    """A validated bank. Close it (or use `with`) when it was opened lazily from a file."""

    splits: dict[str, Split]
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _file: h5py.File | None = field(default=None, repr=False)

    def __getitem__(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            where = f" in {self.path}" if self.path else ""
            raise BankError(
                f"the bank has no {name!r} split{where} "
                f"(splits: {', '.join(self.splits) or 'none'})"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self.splits

    @property
    def query(self) -> Split:
        return self["query"]

    @property
    def gallery(self) -> Split:
        return self["gallery"]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _attr(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def open_h5(path: Path, what: str) -> h5py.File:
    """An HDF5 file opened for reading; a missing or unreadable one is a `BankError`."""
    if not path.exists():
        raise BankError(f"{what} not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise BankError(f"{path} is not a readable HDF5 {what}: {err}") from None


def check_format(f: h5py.File, path: Path, fmt: str, version: int) -> None:
    got = _attr(f.attrs.get("format"))
    if got != fmt:
        raise BankError(f"{path}: format attribute is {got!r}, expected {fmt!r}")
    ver = _attr(f.attrs.get("version"))
    if ver is None or str(ver) != str(version):
        shown = "missing" if ver is None else str(ver)
        raise BankError(f"{path}: {fmt} version {shown} is not supported (expected {version})")


def _read_split(group: h5py.Group, path: Path) -> Split:
    name = group.name.strip("/")
    missing = [k for k in REQUIRED_DATASETS if k not in group]
    if missing:
        raise BankError(f"{path}: split {name!r} is missing dataset(s) {', '.join(missing)}")
    feats = group["feats"]
    if feats.ndim != 2:
        raise BankError(f"{path}: split {name!r} feats must be N x D, got shape {feats.shape}")
    if feats.dtype not in FEATURE_DTYPES:
        raise BankError(
            f"{path}: split {name!r} feats must be float32 or float16, got {feats.dtype}")
    n = feats.shape[0]
    lengths = {k: group[k].shape[0] for k in (*REQUIRED_DATASETS, "viewids") if k in group}
    wrong = {k: v for k, v in lengths.items() if v != n}
    if wrong:
        parts = ", ".join(f"{k} has {v}" for k, v in wrong.items())
        raise BankError(f"{path}: split {name!r} has {n} feature rows but {parts}")
    for key in ("pids", "camids", "viewids"):
        if key in group and group[key].dtype.kind not in "iu":
            # A float id would be truncated silently (2.7 -> 2) and match the wrong person.
            raise BankError(f"{path}: split {name!r} {key} must be integers, got "
                            f"{group[key].dtype}")
    pids = np.asarray(group["pids"][:], dtype=np.int64)
    camids = np.asarray(group["camids"][:], dtype=np.int64)
    viewids = np.asarray(group["viewids"][:], dtype=np.int64) if "viewids" in group else None
    return Split(name, feats, pids, camids, group["paths"], viewids)


def read_bank(path: str | os.PathLike[str], *, lazy: bool = True) -> FeatureBank:
    """Open and validate a bank.

    Structure, lengths and dtypes of every split are checked here; features are checked for
    NaN/inf when read (`Split.read_features`), or here for every split when `lazy=False`
    (which also loads everything into memory and closes the file).
    """
    path = Path(path)
    f = open_h5(path, "feature bank")
    try:
        check_format(f, path, BANK_FORMAT, BANK_VERSION)
        splits = {}
        for key, item in f.items():
            if not isinstance(item, h5py.Group):
                raise BankError(f"{path}: unexpected top-level dataset {key!r} (splits are groups)")
            splits[key] = _read_split(item, path)
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        if lazy:
            return FeatureBank(splits, attrs, path, f)
        loaded = {}
        for name, split in splits.items():
            s = split.load()
            check_finite(np.asarray(s.feats), name, total=len(s))
            loaded[name] = s
    except BaseException:
        f.close()
        raise
    f.close()
    return FeatureBank(loaded, attrs, path)


def _prepare_rows(
    feats: Any, pids: Any, camids: Any, paths: Sequence[str], viewids: Any, split: str,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    f = np.asarray(feats)
    if f.ndim != 2:
        raise BankError(f"split {split!r}: features must be N x D, got shape {f.shape}")
    f = f.astype(dtype, copy=False)
    n = f.shape[0]
    p = np.asarray(pids, dtype=np.int64).reshape(-1)
    c = np.asarray(camids, dtype=np.int64).reshape(-1)
    v = None if viewids is None else np.asarray(viewids, dtype=np.int64).reshape(-1)
    paths = [str(x) for x in paths]
    lengths = {"pids": len(p), "camids": len(c), "paths": len(paths)}
    if v is not None:
        lengths["viewids"] = len(v)
    wrong = {k: x for k, x in lengths.items() if x != n}
    if wrong:
        parts = ", ".join(f"{k} has {x}" for k, x in wrong.items())
        raise BankError(f"split {split!r}: {n} feature rows but {parts}")
    check_finite(f, split)
    return f, p, c, paths, v


class BankWriter(PartialH5Writer):
    """Stream rows into a bank, finishing atomically; resumable after an interruption.

    Rows are committed at each `checkpoint()` to the partial folder `partial_path(path)`
    (see `reidcli.utils.partial_h5`: crash-safe at any instant); `finish()` writes the bank
    and renames it over `path`. With `resume=True` a partial folder of the same inputs
    (`attrs`, `dtype`) is continued from its last verified checkpoint, and `rows_done` tells
    the caller where to continue (e.g. skip the first `rows_done["gallery"]` images of the
    gallery list). Leaving the `with` block with an exception removes the partial folder
    unless `keep_partial=True` (what a resumable extraction wants); a hard kill always leaves
    it for the next run to resume. Either way only rows covered by a `checkpoint()` are kept.
    """

    what = "bank"
    fmt = BANK_FORMAT
    error = BankError

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        attrs: Mapping[str, Any] | None = None,
        dtype: str | np.dtype = "float32",
        resume: bool = False,
        keep_partial: bool = False,
    ) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in FEATURE_DTYPES:
            raise BankError(f"feature dtype must be float32 or float16, got {self.dtype}")
        self.attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
        super().__init__(path, identity={"attrs": self.attrs, "dtype": self.dtype.str},
                         resume=resume, keep_partial=keep_partial)

    def _final_attrs(self) -> dict[str, Any]:
        return {"format": BANK_FORMAT, "version": BANK_VERSION, "created": self.created,
                **self.attrs}

    def _h5_chunks(self, column: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if column == "feats" or column == "paths":
            return (_CHUNK_ROWS, *shape)
        return (_CHUNK_ROWS * 16, *shape)

    def append(
        self,
        split: str,
        feats: Any,
        pids: Any,
        camids: Any,
        paths: Sequence[str],
        viewids: Any = None,
    ) -> None:
        """Append rows to `split` (created on first use). Arrays may be numpy or torch."""
        self._open_check()
        f, p, c, ps, v = _prepare_rows(feats, pids, camids, paths, viewids, split, self.dtype)
        known = self.table_schema(split)
        if known is not None:
            dim = known["feats"][1][0]
            if dim != f.shape[1]:
                raise BankError(f"split {split!r}: appending {f.shape[1]}-dim features to a "
                                f"bank of dimension {dim}")
            if ("viewids" in known) != (v is not None):
                raise BankError(f"split {split!r}: viewids must be given for every chunk or none")
        columns: dict[str, Any] = {"feats": f, "pids": p, "camids": c, "paths": ps}
        if v is not None:
            columns["viewids"] = v
        self._append_rows(split, columns)


def write_bank(
    path: str | os.PathLike[str],
    splits: Mapping[str, Split],
    attrs: Mapping[str, Any] | None = None,
    dtype: str | np.dtype = "float32",
) -> Path:
    """Write whole in-memory splits at once (atomic; no partial file is left on failure)."""
    with BankWriter(path, attrs=attrs, dtype=dtype) as w:
        for name, s in splits.items():
            w.append(name, np.asarray(s.feats[:]), s.pids, s.camids, s.read_paths(), s.viewids)
    return Path(path)
