"""The CFS scores file: one score per source image, written in streaming fashion, resumable.

Layout (HDF5): root attributes `format = "reid-cfs-scores"`, `version = 1` plus provenance
(source, models and their SHA-256, image count); datasets `scores` (N float32, cosine of
the two proxies' features) and `paths` (N UTF-8 strings, relative to the source root), in
source order. 4.2M rows take about 17 MB of scores plus the path strings.

Writing follows `BankWriter` (see `reidcli.utils.partial_h5`): rows are committed at each
checkpoint to a hidden partial folder next to the destination, crash-safe at any instant,
and `finish()` writes the file and renames it over the destination. A resumed writer
continues from the last verified checkpoint, and restarts a partial folder whose provenance
differs, so scores of two model pairs are never mixed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from reidcli.errors import BankError
from reidcli.retrieval.bank import check_format, open_h5
from reidcli.utils.partial_h5 import PartialH5Writer

SCORES_FORMAT = "reid-cfs-scores"
SCORES_VERSION = 1
_STR = h5py.string_dtype("utf-8")
_CHUNK = 16384
_TABLE = "scores"


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


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Provenance and row count of a finished scores file, without loading the rows."""
    path = Path(path)
    with open_h5(path, "scores file") as f:
        check_format(f, path, SCORES_FORMAT, SCORES_VERSION)
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        attrs["rows"] = int(f["scores"].shape[0]) if "scores" in f else 0
    return attrs


def read_scores(path: str | os.PathLike[str]) -> ScoreFile:
    """Scores and relative paths of a finished file, validated."""
    path = Path(path)
    with open_h5(path, "scores file") as f:
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

    what = "scores file"
    fmt = SCORES_FORMAT
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
        self.attrs = {k: v for k, v in attrs.items() if v is not None}
        super().__init__(path, identity={"attrs": self.attrs}, resume=resume,
                         keep_partial=keep_partial)

    def _table_group(self, f: h5py.File, table: str) -> h5py.Group:
        return f  # one table, stored at the root

    def _h5_chunks(self, column: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (_CHUNK, *shape)

    def _final_attrs(self) -> dict[str, Any]:
        return {"format": SCORES_FORMAT, "version": SCORES_VERSION, "created": self.created,
                **self.attrs}

    @property
    def rows_done(self) -> int:
        """Rows that survived the last checkpoint: what a resumed run skips."""
        return self._committed.get(_TABLE, 0)

    def append(self, scores: np.ndarray, paths: Sequence[str]) -> None:
        s = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(s) != len(paths):
            raise BankError(f"{len(s)} scores but {len(paths)} paths")
        self._append_rows(_TABLE, {"scores": s, "paths": list(paths)})
