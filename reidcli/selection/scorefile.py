"""The CFS scores file: one score per source image, written in streaming fashion, resumable.

Layout (HDF5): root attributes `format = "reid-cfs-scores"`, `version = 1` plus provenance
(source, models and their SHA-256, image count); datasets `scores` (N float32, cosine of
the two proxies' features) and `paths` (N UTF-8 strings, relative to the source root), in
source order. 4.2M rows take about 17 MB of scores plus the path strings.

Writing follows `BankWriter`: rows go to a hidden partial file next to the destination,
`checkpoint()` records how many rows are committed, `finish()` renames the partial file over
the destination. A resumed writer truncates to the last checkpoint, and refuses (restarts)
a partial file whose provenance differs, so scores of two model pairs are never mixed.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from reidcli.errors import BankError
from reidcli.retrieval.bank import check_format
from reidcli.utils.io import open_h5_for_writing
from reidcli.utils.partial_h5 import PartialH5Writer

log = logging.getLogger(__name__)

SCORES_FORMAT = "reid-cfs-scores"
SCORES_VERSION = 1
_STR = h5py.string_dtype("utf-8")
_CHUNK = 16384


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class ScoreFile:
    """A finished scores file read into memory."""

    scores: np.ndarray
    paths: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise BankError(f"scores file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise BankError(f"{path} is not a readable HDF5 scores file: {err}") from None


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Provenance and row count of a finished scores file, without loading the rows."""
    path = Path(path)
    with _open(path) as f:
        check_format(f, path, SCORES_FORMAT, SCORES_VERSION)
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        attrs["rows"] = int(f["scores"].shape[0]) if "scores" in f else 0
    return attrs


def read_scores(path: str | os.PathLike[str]) -> ScoreFile:
    """Scores and relative paths of a finished file, validated."""
    path = Path(path)
    with _open(path) as f:
        check_format(f, path, SCORES_FORMAT, SCORES_VERSION)
        if "scores" not in f or "paths" not in f:
            raise BankError(f"{path}: a scores file needs datasets `scores` and `paths`")
        scores = np.asarray(f["scores"][:], dtype=np.float32)
        raw = f["paths"][:]
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if len(raw) != len(scores):
        raise BankError(f"{path}: {len(scores)} scores but {len(raw)} paths")
    paths = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in raw]
    return ScoreFile(scores, paths, attrs)


def matches(path: str | os.PathLike[str], provenance: Mapping[str, Any], rows: int) -> bool:
    """Whether `path` is a finished scores file of exactly these inputs."""
    try:
        attrs = read_attrs(path)
    except BankError:
        return False
    return attrs["rows"] == rows and all(attrs.get(k) == v for k, v in provenance.items())


class ScoreWriter(PartialH5Writer):
    """Append (score, path) rows; checkpoint; finish atomically; resume after a crash."""

    what = "scores writer"
    error = BankError
    # Every append is a whole scored batch, so rows since the last checkpoint are kept too.
    keep_rows_on_error = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        attrs: Mapping[str, Any],
        resume: bool = False,
        keep_partial: bool = False,
    ) -> None:
        super().__init__(path, keep_partial)
        self.attrs = {k: v for k, v in attrs.items() if v is not None}
        self._committed = 0
        self._file = self._reopen() if resume and self.tmp.exists() else None
        if self._file is None:
            self._file = self._create()

    def _create(self) -> h5py.File:
        f = open_h5_for_writing(self.tmp)
        f.attrs["format"] = SCORES_FORMAT
        f.attrs["version"] = SCORES_VERSION
        f.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        for key, value in self.attrs.items():
            f.attrs[key] = value
        f.attrs["committed"] = 0
        f.create_dataset("scores", (0,), np.float32, maxshape=(None,), chunks=(_CHUNK,))
        f.create_dataset("paths", (0,), _STR, maxshape=(None,), chunks=(_CHUNK,))
        return f

    def _reopen(self) -> h5py.File | None:
        try:
            f = open_h5_for_writing(self.tmp, "r+")
        except OSError as err:
            log.warning("partial scores file %s is unreadable (%s); starting over", self.tmp, err)
            self.tmp.unlink()
            return None
        stale = _attr(f.attrs.get("format")) != SCORES_FORMAT or any(
            _attr(f.attrs.get(k)) != v for k, v in self.attrs.items()
        )
        if stale:
            f.close()
            log.warning("discarding %s: it was scored with other models or other images",
                        self.tmp)
            self.tmp.unlink()
            return None
        done = int(f.attrs.get("committed", 0))
        for key in ("scores", "paths"):
            f[key].resize(done, axis=0)
        self._committed = done
        log.info("resuming %s after %d scored images", self.tmp, done)
        return f

    @property
    def rows_done(self) -> int:
        """Rows that survived the last checkpoint: what a resumed run skips."""
        return self._committed

    def append(self, scores: np.ndarray, paths: Sequence[str]) -> None:
        if self._file is None:
            raise BankError("the scores writer is already closed")
        s = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(s) != len(paths):
            raise BankError(f"{len(s)} scores but {len(paths)} paths")
        n0 = self._file["scores"].shape[0]
        n1 = n0 + len(s)
        self._file["scores"].resize(n1, axis=0)
        self._file["scores"][n0:n1] = s
        self._file["paths"].resize(n1, axis=0)
        self._file["paths"][n0:n1] = list(paths)

    def checkpoint(self) -> int:
        """Flush and mark every row written so far as committed."""
        assert self._file is not None
        self._committed = int(self._file["scores"].shape[0])
        self._file.attrs["committed"] = self._committed
        self._file.flush()
        return self._committed

    def _uncommit(self) -> None:
        assert self._file is not None
        del self._file.attrs["committed"]
