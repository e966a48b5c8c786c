"""Top-k gallery items of chosen queries, from a feature bank or a distance file.

Each returned match is classified the way the Market-1501 protocol treats it, so the
picture shows why a ranked list scores as it does: same identity in another camera is
correct, same identity in the query's own camera and junk (pid -1) are ignored by the
metrics, everything else (distractors, pid 0, included) is incorrect.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch

from reidcli.errors import BankError
from reidcli.retrieval.bank import Split, read_bank
from reidcli.retrieval.distances import Metric, prepare_features, sq_norms, sqdist
from reidcli.retrieval.distfile import is_distance_file, read_distances

JUNK_PID = -1
# Gallery rows whose features are held at once when a bank is ranked (bounded memory for
# MSMT17-sized galleries; the selected queries are few).
GALLERY_BLOCK_ROWS = 65536


class MatchKind(StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"
    JUNK = "junk"
    SAME_CAMERA = "same-camera"
    UNLABELLED = "unlabelled"
    """`reid search`: neither the query nor the gallery has identities."""


LABELLED_KINDS = (MatchKind.CORRECT, MatchKind.WRONG, MatchKind.JUNK, MatchKind.SAME_CAMERA)


@dataclass(frozen=True)
class Match:
    path: str
    pid: int
    camid: int
    distance: float
    kind: MatchKind
    gallery_index: int


@dataclass(frozen=True)
class RankedQuery:
    index: int
    path: str
    pid: int
    camid: int
    matches: list[Match]


def classify(query_pid: int, query_cam: int, pid: int, cam: int) -> MatchKind:
    if pid == JUNK_PID:
        return MatchKind.JUNK
    if pid == query_pid:
        return MatchKind.SAME_CAMERA if cam == query_cam else MatchKind.CORRECT
    return MatchKind.WRONG


def _check_indices(indices: Sequence[int], n_queries: int, source: os.PathLike[str] | str) -> None:
    bad = [i for i in indices if not 0 <= i < n_queries]
    if bad:
        raise BankError(f"{source} has {n_queries} queries (indices 0-{n_queries - 1}); "
                        f"query index {bad[0]} does not exist")


def _bank_rows(query: Split, gallery: Split, indices: Sequence[int], metric: Metric) -> np.ndarray:
    """Distances of the chosen queries to every gallery item, gallery read block by block."""
    q_all = query.read_features()
    if q_all.shape[1] != gallery.dim:
        raise BankError(f"query features have {q_all.shape[1]} dimensions, "
                        f"gallery {gallery.dim}")
    q = prepare_features(q_all[list(indices)], metric)
    q_sq = sq_norms(q)
    blocks = [sqdist(q, prepare_features(block, metric), q_sq).numpy()
              for _, block in gallery.iter_features(GALLERY_BLOCK_ROWS)]
    return np.concatenate(blocks, axis=1) if blocks else np.empty((len(indices), 0), np.float32)


def _ranked(rows: np.ndarray, indices: Sequence[int], k: int, q_pids: np.ndarray,
            q_cams: np.ndarray, q_paths: Sequence[str], g_pids: np.ndarray, g_cams: np.ndarray,
            g_paths: Sequence[str]) -> list[RankedQuery]:
    out = []
    for row, qi in zip(rows, indices, strict=True):
        # A stable sort: equal distances keep gallery order, as the evaluation does.
        top = np.argsort(row, kind="stable")[:k]
        qp, qc = int(q_pids[qi]), int(q_cams[qi])
        matches = [Match(g_paths[j], int(g_pids[j]), int(g_cams[j]), float(row[j]),
                         classify(qp, qc, int(g_pids[j]), int(g_cams[j])), int(j))
                   for j in top.tolist()]
        out.append(RankedQuery(qi, q_paths[qi], qp, qc, matches))
    return out


def rank_queries(
    source: os.PathLike[str] | str,
    indices: Sequence[int],
    k: int,
    *,
    metric: Metric = "cosine",
    query_split: str = "query",
    gallery_split: str = "gallery",
) -> list[RankedQuery]:
    """The top-k ranked list of each chosen query (0-based indices into the query split)."""
    if k < 1:
        raise BankError(f"k must be at least 1, got {k}")
    if is_distance_file(source):
        with read_distances(source) as df:
            _check_indices(indices, len(df.query), source)
            rows = np.stack([np.asarray(df.dist[i], dtype=np.float32) for i in indices]) \
                if indices else np.empty((0, len(df.gallery)), np.float32)
            q, g = df.query, df.gallery
            return _ranked(rows, indices, k, q.pids, q.camids, q.paths, g.pids, g.camids,
                           g.paths)
    with torch.inference_mode(), read_bank(source) as bank:
        query, gallery = bank[query_split], bank[gallery_split]
        _check_indices(indices, len(query), source)
        if len(gallery) == 0:
            raise BankError(f"{source}: the {gallery_split!r} split is empty")
        rows = _bank_rows(query, gallery, indices, metric)
        return _ranked(rows, indices, k, query.pids, query.camids, query.read_paths(),
                       gallery.pids, gallery.camids, gallery.read_paths())


def source_info(source: os.PathLike[str] | str,
                query_split: str = "query") -> tuple[int, dict[str, object]]:
    """(number of queries, root attributes) of a bank or distance file."""
    if is_distance_file(source):
        with read_distances(source) as df:
            return len(df.query), dict(df.attrs)
    with read_bank(source) as bank:
        return len(bank[query_split]), dict(bank.attrs)
