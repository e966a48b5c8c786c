"""Market-1501-protocol evaluation of feature banks and distance files, block by block.

Queries are processed in blocks whose distances to the whole gallery fit a fixed memory
budget; each block is reduced to per-query AP / INP / first-hit rank (`ranking.py`) and
dropped. Nothing of size Q x G is ever held, and no gallery row is sorted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcli.errors import BankError
from reidcli.retrieval.bank import FeatureBank, check_comparable, read_bank
from reidcli.retrieval.distances import (
    DEFAULT_CHUNK_BYTES,
    Metric,
    iter_row_chunks,
    prepare_features,
    sq_norms,
    sqdist,
)
from reidcli.retrieval.distfile import is_distance_file, read_distances
from reidcli.retrieval.expansion import expand
from reidcli.retrieval.metrics import PerQuery, bootstrap_ci, per_camera, summarize
from reidcli.retrieval.ranking import GalleryIndex, block_metrics
from reidcli.retrieval.rerank import RerankParams, rerank_blocks
from reidcli.runtime.device import resolve_device

log = logging.getLogger(__name__)

# Bytes per query x gallery entry that one evaluated block may need at worst: the distance,
# the candidate mask and, when every item is a candidate (a useless model), its row/column
# indices, key and bucket.
EVAL_BYTES_PER_ITEM = 48


@dataclass
class EvaluationResult:
    """Metrics as fractions in [0, 1]; `cmc[k-1]` is the rank-k accuracy."""

    mAP: float
    mINP: float
    cmc: list[float]
    rank1: float
    rank5: float
    rank10: float
    rank20: float
    num_queries: int
    num_valid_queries: int
    metric: str | None = None
    rerank: dict[str, Any] | None = None
    qe: int = 0
    dba: int = 0
    per_camera: list[dict[str, Any]] | None = None
    ci: dict[str, Any] | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out.update(self.extra)
        return out


@dataclass
class EvalOptions:
    max_rank: int = 50
    per_camera: bool = False
    ci: float | None = None
    ci_samples: int = 1000
    budget: int = DEFAULT_CHUNK_BYTES


def evaluate_blocks(
    blocks: Iterable[tuple[int, torch.Tensor | np.ndarray]],
    qpids: np.ndarray,
    qcams: np.ndarray,
    gpids: np.ndarray,
    gcams: np.ndarray,
    options: EvalOptions = EvalOptions(),
    device: torch.device | str = "cpu",
) -> EvaluationResult:
    """Evaluate row blocks (first query row, B x G distances) covering all queries once."""
    device = torch.device(device)
    qpids = np.asarray(qpids, dtype=np.int64)
    qcams = np.asarray(qcams, dtype=np.int64)
    nq = len(qpids)
    if nq == 0:
        raise BankError("there are no queries to evaluate")
    if len(gpids) == 0:
        raise BankError("the gallery is empty")
    gi = GalleryIndex.build(gpids, gcams, device)
    qp_t = torch.as_tensor(qpids, device=device)
    qc_t = torch.as_tensor(qcams, device=device)
    ap = np.zeros(nq)
    inp = np.zeros(nq)
    first = np.zeros(nq, dtype=np.int64)
    npos = np.zeros(nq, dtype=np.int64)
    seen = 0
    for start, block in blocks:
        d = torch.as_tensor(block).to(device=device, dtype=torch.float32)
        stop = start + d.shape[0]
        m = block_metrics(d, qp_t[start:stop], qc_t[start:stop], gi)
        ap[start:stop] = m.ap.cpu().numpy()
        inp[start:stop] = m.inp.cpu().numpy()
        first[start:stop] = m.first.cpu().numpy()
        npos[start:stop] = m.npos.cpu().numpy()
        seen += d.shape[0]
    if seen != nq:
        raise BankError(f"distance blocks covered {seen} of {nq} queries")
    pq = PerQuery(ap, inp, first, npos)
    nvalid = int(pq.valid.sum())
    if nvalid == 0:
        raise BankError(
            f"none of the {nq} queries has a positive in the gallery (same pid, different "
            "camera, pid != -1): check that query and gallery come from the same dataset"
        )
    if nvalid < nq:
        log.info("%d of %d queries have no positive in the gallery and are skipped",
                 nq - nvalid, nq)
    s = summarize(pq, options.max_rank)
    return EvaluationResult(
        mAP=float(s["mAP"]), mINP=float(s["mINP"]), cmc=list(s["cmc"]),  # type: ignore[arg-type]
        rank1=float(s["rank1"]), rank5=float(s["rank5"]), rank10=float(s["rank10"]),
        rank20=float(s["rank20"]), num_queries=nq, num_valid_queries=nvalid,
        per_camera=per_camera(pq, qcams, options.max_rank) if options.per_camera else None,
        ci=({"level": options.ci, **bootstrap_ci(pq, options.ci, options.ci_samples)}
            if options.ci else None),
    )


def feature_blocks(query: torch.Tensor, gallery: torch.Tensor, budget: int
                   ) -> Iterable[tuple[int, torch.Tensor]]:
    """Plain distance blocks between prepared features."""
    q_sq, g_sq = sq_norms(query), sq_norms(gallery)
    for a, b in iter_row_chunks(query.shape[0], gallery.shape[0], budget, EVAL_BYTES_PER_ITEM):
        yield a, sqdist(query[a:b], gallery, q_sq[a:b], g_sq)


def evaluate_features(
    query_feats: np.ndarray | torch.Tensor,
    gallery_feats: np.ndarray | torch.Tensor,
    qpids: np.ndarray,
    qcams: np.ndarray,
    gpids: np.ndarray,
    gcams: np.ndarray,
    *,
    metric: Metric = "cosine",
    rerank: RerankParams | None = None,
    qe: int = 0,
    dba: int = 0,
    options: EvalOptions = EvalOptions(),
    device: str | torch.device | None = "cpu",
) -> EvaluationResult:
    """Evaluate query against gallery features (optionally DBA, QE, then re-ranking)."""
    dev = resolve_device(device)
    gpids = np.asarray(gpids, dtype=np.int64)
    gcams = np.asarray(gcams, dtype=np.int64)
    q = prepare_features(query_feats, metric, dev)
    g = prepare_features(gallery_feats, metric, dev)
    if q.shape[1] != g.shape[1]:
        raise BankError(f"query features have {q.shape[1]} dimensions, gallery {g.shape[1]}")
    q, g = expand(q, g, qe=qe, dba=dba, metric=metric, budget=options.budget)
    if rerank is not None:
        blocks: Iterable[tuple[int, torch.Tensor]] = rerank_blocks(q, g, rerank, options.budget)
    else:
        # Unlabelled gallery items never count once retrieval is done, so skip them early;
        # dropping columns keeps the gallery order and hence the tie-break.
        keep = np.flatnonzero(gpids != -1)
        if keep.size < gpids.size:
            g = g[torch.as_tensor(keep, device=dev)]
            gpids, gcams = gpids[keep], gcams[keep]
        blocks = feature_blocks(q, g, options.budget)
    result = evaluate_blocks(blocks, qpids, qcams, gpids, gcams, options, dev)
    result.metric = metric
    result.rerank = rerank.to_dict() if rerank is not None else None
    result.qe, result.dba = qe, dba
    return result


def evaluate_bank(
    bank: FeatureBank | str | os.PathLike[str],
    *,
    query_split: str = "query",
    gallery_split: str = "gallery",
    **kwargs: Any,
) -> EvaluationResult:
    """Evaluate two splits of a bank; keyword arguments as for `evaluate_features`."""
    own = not isinstance(bank, FeatureBank)
    fb = read_bank(bank) if own else bank  # type: ignore[arg-type]
    try:
        q, g = fb[query_split], fb[gallery_split]
        check_comparable(q, g, fb.path)
        result = evaluate_features(q.read_features(), g.read_features(), q.pids, q.camids,
                                   g.pids, g.camids, **kwargs)
    finally:
        if own:
            fb.close()
    result.source = str(fb.path) if fb.path else None
    return result


def evaluate_distance_file(
    path: str | os.PathLike[str],
    *,
    options: EvalOptions = EvalOptions(),
    device: str | torch.device | None = "cpu",
) -> EvaluationResult:
    """Evaluate a distance file written by `reid rerank` (or any tool following the format)."""
    dev = resolve_device(device)
    with read_distances(path) as df:
        ng = len(df.gallery)
        rows = max(1, options.budget // max(1, EVAL_BYTES_PER_ITEM * ng))
        result = evaluate_blocks(df.iter_rows(rows), df.query.pids, df.query.camids,
                                 df.gallery.pids, df.gallery.camids, options, dev)
        attrs = df.attrs
    result.metric = attrs.get("metric")
    if "k1" in attrs:
        result.rerank = {"k1": int(attrs["k1"]), "k2": int(attrs["k2"]),
                         "lambda": float(attrs["lambda"])}
    result.qe, result.dba = int(attrs.get("qe", 0)), int(attrs.get("dba", 0))
    result.source = str(path)
    return result


def evaluate_path(
    path: str | os.PathLike[str],
    **kwargs: Any,
) -> EvaluationResult:
    """A bank or a distance file, recognised by its `format` attribute."""
    if is_distance_file(path):
        extra = {k: v for k, v in kwargs.items()
                 if k in ("metric", "rerank", "qe", "dba", "query_split", "gallery_split")
                 and v not in (None, 0, "cosine", "query", "gallery")}
        if extra:
            raise BankError(f"{Path(path)} is a distance file: {', '.join(extra)} need a "
                            "feature bank")
        return evaluate_distance_file(path, options=kwargs.get("options", EvalOptions()),
                                      device=kwargs.get("device", "cpu"))
    return evaluate_bank(path, **kwargs)
