"""Distance files: a Q x G distance matrix with the labels needed to evaluate it.

Layout (see docs/formats.md): root attributes `format = "reid-distances"`, `version = 1`,
`metric`, `qe`, `dba`, and the re-ranking parameters `k1`, `k2`, `lambda` when re-ranked;
`dist` (Q x G float32, chunked by rows, smaller = more similar); `query` and `gallery`
groups with `pids`, `camids`, `paths`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from reidcli.errors import BankError
from reidcli.retrieval.bank import _attr, check_format, open_h5
from reidcli.utils.closing import Closing
from reidcli.utils.io import atomic_h5

DIST_FORMAT = "reid-distances"
DIST_VERSION = 1
_STR = h5py.string_dtype("utf-8")


@dataclass
class Labels:
    pids: np.ndarray
    camids: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.pids)


@dataclass
class DistanceFile(Closing):
    """An open distance file; `dist` is the lazy h5py dataset (read row blocks from it)."""

    dist: Any
    query: Labels
    gallery: Labels
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _file: h5py.File | None = field(default=None, repr=False)

    def iter_rows(self, rows: int) -> Iterable[tuple[int, np.ndarray]]:
        for start in range(0, self.dist.shape[0], rows):
            block = np.asarray(self.dist[start:start + rows], dtype=np.float32)
            if not np.isfinite(block).all():
                bad = int((~np.isfinite(block).all(axis=1)).sum())
                raise BankError(f"{self.path}: {bad} distance rows from row {start} hold NaN/inf")
            yield start, block

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def is_distance_file(path: str | os.PathLike[str]) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return _attr(f.attrs.get("format")) == DIST_FORMAT
    except OSError:
        return False


def _labels(f: h5py.File, name: str, path: Path) -> Labels:
    if name not in f:
        raise BankError(f"{path}: distance file has no {name!r} group")
    g = f[name]
    missing = [k for k in ("pids", "camids", "paths") if k not in g]
    if missing:
        raise BankError(f"{path}: group {name!r} is missing {', '.join(missing)}")
    pids = np.asarray(g["pids"][:], dtype=np.int64)
    camids = np.asarray(g["camids"][:], dtype=np.int64)
    paths = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in g["paths"][:]]
    if not len(pids) == len(camids) == len(paths):
        raise BankError(f"{path}: group {name!r} has {len(pids)} pids, {len(camids)} camids "
                        f"and {len(paths)} paths")
    return Labels(pids, camids, paths)


def read_distances(path: str | os.PathLike[str]) -> DistanceFile:
    """Open and validate a distance file (the matrix itself stays on disk)."""
    path = Path(path)
    f = open_h5(path, "distance file")
    try:
        check_format(f, path, DIST_FORMAT, DIST_VERSION)
        if "dist" not in f:
            raise BankError(f"{path}: distance file has no 'dist' dataset")
        dist = f["dist"]
        q, g = _labels(f, "query", path), _labels(f, "gallery", path)
        if dist.ndim != 2 or dist.shape != (len(q), len(g)):
            raise BankError(f"{path}: dist has shape {dist.shape}, expected "
                            f"{len(q)} queries x {len(g)} gallery items")
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    except BaseException:
        f.close()
        raise
    return DistanceFile(dist, q, g, attrs, path, f)


def distance_file_bytes(query: Labels, gallery: Labels) -> int:
    """About how large the distance file of `query` x `gallery` will be."""
    paths = sum(len(p) + 16 for p in [*query.paths, *gallery.paths])
    return 4 * len(query) * len(gallery) + 16 * (len(query) + len(gallery)) + paths + 2**16


def write_distances(
    path: str | os.PathLike[str],
    blocks: Iterable[tuple[int, torch.Tensor | np.ndarray]],
    query: Labels,
    gallery: Labels,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Stream row blocks of the Q x G matrix into a new distance file, atomically."""
    path = Path(path)
    nq, ng = len(query), len(gallery)
    with atomic_h5(path, needed=distance_file_bytes(query, gallery)) as f:
        f.attrs["format"] = DIST_FORMAT
        f.attrs["version"] = DIST_VERSION
        for key, value in (attrs or {}).items():
            if value is not None:
                f.attrs[key] = value
        rows = max(1, min(nq, (4 * 2**20) // max(1, 4 * ng)))
        dist = f.create_dataset("dist", (nq, ng), np.float32, chunks=(rows, max(1, ng))
                                if nq and ng else None)
        written = 0
        for start, block in blocks:
            arr = block.detach().cpu().numpy() if isinstance(block, torch.Tensor) else block
            dist[start:start + arr.shape[0]] = arr
            written += arr.shape[0]
        if written != nq:
            raise BankError(f"distance blocks covered {written} of {nq} query rows")
        for name, lab in (("query", query), ("gallery", gallery)):
            g = f.create_group(name)
            g.create_dataset("pids", data=np.asarray(lab.pids, dtype=np.int64))
            g.create_dataset("camids", data=np.asarray(lab.camids, dtype=np.int64))
            g.create_dataset("paths", data=list(lab.paths), dtype=_STR)
    return path
