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
from reidcli.retrieval.distances import DEFAULT_CHUNK_BYTES
from reidcli.retrieval.pipeline import Retrieval, Source, open_source
from reidcli.utils.checks import at_least

JUNK_PID = -1


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


def rank_source(src: Source, indices: Sequence[int], k: int,
                device: torch.device | str = "cpu") -> list[RankedQuery]:
    """The top-k ranked list of each chosen query of an open bank or distance file."""
    at_least(1, ("k", k), error=BankError)
    _check_indices(indices, len(src.query), src.path)
    if len(src.gallery) == 0:
        raise BankError(f"{src.path}: the gallery is empty")
    with torch.inference_mode():
        rows = src.rows(indices, device, DEFAULT_CHUNK_BYTES)
    q, g = src.query, src.gallery
    return _ranked(rows, indices, k, q.pids, q.camids, q.paths, g.pids, g.camids, g.paths)


def rank_queries(
    source: os.PathLike[str] | str,
    indices: Sequence[int],
    k: int,
    retrieval: Retrieval = Retrieval(),
    *,
    query_split: str = "query",
    gallery_split: str = "gallery",
    device: torch.device | str = "cpu",
) -> list[RankedQuery]:
    """The top-k ranked list of each chosen query (0-based indices into the query split)."""
    with open_source(source, retrieval, query_split=query_split,
                     gallery_split=gallery_split) as src:
        return rank_source(src, indices, k, device)
