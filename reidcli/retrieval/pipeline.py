"""One retrieval pipeline: prepare -> DBA / QE -> re-ranking or plain distances.

`Retrieval` holds the settings of every retrieval step and runs them in one order for
evaluation, `reid rerank`, `reid visualize` and `reid search`; a distance file records them
as its root attributes (`to_attrs` / `from_attrs`). `open_source` is the one place that tells
a feature bank from a distance file: both come back as a `Source` whose distance rows are
read (a file) or computed (a bank) under a memory budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from reidcli.errors import BankError
from reidcli.retrieval.bank import check_comparable, read_bank
from reidcli.retrieval.distances import (
    DEFAULT_CHUNK_BYTES,
    METRICS,
    Metric,
    iter_row_chunks,
    knn,
    prepare_features,
    sq_norms,
    sqdist,
    stable_topk,
)
from reidcli.retrieval.distfile import DistanceFile, Labels, is_distance_file, read_distances
from reidcli.retrieval.expansion import expand
from reidcli.retrieval.rerank import RerankParams, rerank_blocks
from reidcli.utils.closing import Closing

# Bytes per query x gallery entry that one block may need at worst downstream (evaluation's
# distance, candidate mask and, when every item is a candidate, its row/column indices, key
# and bucket): block sizes are chosen from it.
BYTES_PER_ITEM = 48

Blocks = Iterator[tuple[int, torch.Tensor | np.ndarray]]


def feature_blocks(query: torch.Tensor, gallery: torch.Tensor, budget: int = DEFAULT_CHUNK_BYTES
                   ) -> Iterator[tuple[int, torch.Tensor]]:
    """Plain distance blocks between prepared features."""
    q_sq, g_sq = sq_norms(query), sq_norms(gallery)
    for a, b in iter_row_chunks(query.shape[0], gallery.shape[0], budget, BYTES_PER_ITEM):
        yield a, sqdist(query[a:b], gallery, q_sq[a:b], g_sq)


@dataclass(frozen=True)
class Retrieval:
    """How query x gallery distances are made from features; the default is plain cosine."""

    metric: Metric = "cosine"
    dba: int = 0
    qe: int = 0
    rerank: RerankParams | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise BankError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        if self.qe < 0 or self.dba < 0:
            raise BankError(f"qe and dba are top-K counts >= 0, got qe={self.qe}, "
                            f"dba={self.dba}")

    def is_plain(self) -> bool:
        """True when the distances are plain ones (no DBA, QE or re-ranking)."""
        return self.dba == 0 and self.qe == 0 and self.rerank is None

    def changed(self) -> list[str]:
        """Names of the settings that differ from the default (plain cosine)."""
        default = Retrieval()
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    def to_attrs(self) -> dict[str, Any]:
        """The settings as distance-file attributes (docs/formats.md)."""
        attrs: dict[str, Any] = {"metric": self.metric, "qe": self.qe, "dba": self.dba}
        if self.rerank is not None:
            attrs.update(self.rerank.to_dict())
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Retrieval:
        """The inverse of `to_attrs`; a foreign file without attributes reads as plain cosine."""
        params = None
        if "k1" in attrs:
            params = RerankParams(int(attrs["k1"]), int(attrs["k2"]), float(attrs["lambda"]))
        return cls(metric=attrs.get("metric", "cosine"), dba=int(attrs.get("dba", 0)),
                   qe=int(attrs.get("qe", 0)), rerank=params)

    def describe(self) -> dict[str, Any]:
        """The settings as evaluation results report them."""
        return {"metric": self.metric, "qe": self.qe, "dba": self.dba,
                "rerank": self.rerank.to_dict() if self.rerank is not None else None}

    def prepare(
        self, query: np.ndarray | torch.Tensor, gallery: np.ndarray | torch.Tensor,
        device: torch.device | str = "cpu", budget: int = DEFAULT_CHUNK_BYTES,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 features on `device` for the metric, after DBA and QE."""
        q = prepare_features(query, self.metric, device)
        g = prepare_features(gallery, self.metric, device)
        if q.shape[1] != g.shape[1]:
            raise BankError(f"query features have {q.shape[1]} dimensions, gallery {g.shape[1]}")
        return expand(q, g, qe=self.qe, dba=self.dba, metric=self.metric, budget=budget)

    def blocks(self, query: torch.Tensor, gallery: torch.Tensor,
               budget: int = DEFAULT_CHUNK_BYTES) -> Iterator[tuple[int, torch.Tensor]]:
        """(first query row, block) pairs of the distances between prepared features."""
        if self.rerank is not None:
            return rerank_blocks(query, gallery, self.rerank, budget)
        return feature_blocks(query, gallery, budget)

    def topk(self, query: torch.Tensor, gallery: torch.Tensor, k: int,
             budget: int = DEFAULT_CHUNK_BYTES) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances, gallery indices) of each prepared query's k nearest, stable ties."""
        if self.rerank is None:
            return knn(query, gallery, k, budget=budget)
        parts = [stable_topk(block, k) for _, block in self.blocks(query, gallery, budget)]
        if not parts:
            kk = min(k, gallery.shape[0])
            return (torch.empty(0, kk, device=query.device),
                    torch.empty(0, kk, dtype=torch.int64, device=query.device))
        return torch.cat([v for v, _ in parts]), torch.cat([i for _, i in parts])


class Source(Protocol):
    """Query x gallery distances with their labels: a feature bank or a distance file."""

    path: Path
    query: Labels
    gallery: Labels
    retrieval: Retrieval

    def blocks(self, device: torch.device | str, budget: int) -> Blocks: ...

    def rows(self, indices: Sequence[int], device: torch.device | str,
             budget: int) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...


class FileSource(Closing):
    """A distance file: rows are read, never recomputed."""

    def __init__(self, df: DistanceFile) -> None:
        self.file = df
        self.path = Path(df.path) if df.path is not None else Path()
        self.query, self.gallery = df.query, df.gallery
        self.retrieval = Retrieval.from_attrs(df.attrs)

    def blocks(self, device: torch.device | str = "cpu",
               budget: int = DEFAULT_CHUNK_BYTES) -> Blocks:
        rows = max(1, budget // max(1, BYTES_PER_ITEM * len(self.gallery)))
        return self.file.iter_rows(rows)

    def rows(self, indices: Sequence[int], device: torch.device | str = "cpu",
             budget: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
        if not indices:
            return np.empty((0, len(self.gallery)), np.float32)
        return np.stack([np.asarray(self.file.dist[i], dtype=np.float32) for i in indices])

    def close(self) -> None:
        self.file.close()


class FeatureSource(Closing):
    """Query and gallery features in memory (read from a bank, or given): rows are computed."""

    def __init__(self, query_feats: np.ndarray | torch.Tensor,
                 gallery_feats: np.ndarray | torch.Tensor, query: Labels, gallery: Labels,
                 retrieval: Retrieval = Retrieval(), path: Path | None = None) -> None:
        self.query_feats, self.gallery_feats = query_feats, gallery_feats
        self.query, self.gallery = query, gallery
        self.retrieval = retrieval
        self.path = path if path is not None else Path()

    def blocks(self, device: torch.device | str = "cpu",
               budget: int = DEFAULT_CHUNK_BYTES) -> Blocks:
        q, g = self.retrieval.prepare(self.query_feats, self.gallery_feats, device, budget)
        return self.retrieval.blocks(q, g, budget)

    def rows(self, indices: Sequence[int], device: torch.device | str = "cpu",
             budget: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
        idx = list(indices)
        if self.retrieval.is_plain():
            # Only the chosen queries: expansion and re-ranking would need them all.
            q, g = self.retrieval.prepare(self.query_feats[idx], self.gallery_feats, device,
                                          budget)
            return sqdist(q, g).cpu().numpy()
        out = np.empty((len(idx), len(self.gallery)), np.float32)
        want = np.asarray(idx, dtype=np.int64)
        for start, block in self.blocks(device, budget):
            arr = torch.as_tensor(block).cpu().numpy()
            hit = np.flatnonzero((want >= start) & (want < start + arr.shape[0]))
            out[hit] = arr[want[hit] - start]
        return out

    def close(self) -> None:
        pass


def bank_source(path: str | os.PathLike[str], retrieval: Retrieval = Retrieval(), *,
                query_split: str = "query", gallery_split: str = "gallery") -> FeatureSource:
    """Two splits of a feature bank, read into memory, with their labels and image paths."""
    with read_bank(path) as bank:
        qs, gs = bank[query_split], bank[gallery_split]
        check_comparable(qs, gs, bank.path)
        labels = [Labels(np.asarray(s.pids, dtype=np.int64), np.asarray(s.camids, dtype=np.int64),
                         s.read_paths()) for s in (qs, gs)]
        feats = qs.read_features(), gs.read_features()
        where = Path(bank.path) if bank.path is not None else Path(path)
    return FeatureSource(*feats, *labels, retrieval, where)


def open_source(path: str | os.PathLike[str], retrieval: Retrieval = Retrieval(), *,
                query_split: str = "query", gallery_split: str = "gallery") -> Source:
    """A bank or a distance file, recognised by its `format` attribute.

    A distance file's distances are final: asking for retrieval settings or bank splits
    with one is an error rather than silently ignored.
    """
    if is_distance_file(path):
        extra = retrieval.changed()
        extra += [name for name, value, default in (("query_split", query_split, "query"),
                                                    ("gallery_split", gallery_split, "gallery"))
                  if value != default]
        if extra:
            raise BankError(f"{Path(path)} is a distance file: {', '.join(extra)} need a "
                            "feature bank")
        return FileSource(read_distances(path))
    return bank_source(path, retrieval, query_split=query_split, gallery_split=gallery_split)
