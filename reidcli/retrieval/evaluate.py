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
from typing import Any

import numpy as np
import torch

from reidcli.errors import BankError
from reidcli.retrieval.distances import DEFAULT_CHUNK_BYTES
from reidcli.retrieval.distfile import Labels
from reidcli.retrieval.metrics import PerQuery, bootstrap_ci, per_camera, summarize
from reidcli.retrieval.pipeline import FeatureSource, Retrieval, Source, open_source
from reidcli.retrieval.ranking import GalleryIndex, block_metrics
from reidcli.runtime.device import resolve_device

log = logging.getLogger(__name__)


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


def evaluate_source(
    source: Source,
    options: EvalOptions = EvalOptions(),
    device: str | torch.device | None = "cpu",
) -> EvaluationResult:
    """Evaluate a bank or a distance file opened by `open_source`."""
    dev = resolve_device(device)
    gallery, blocks = source.gallery, None
    if isinstance(source, FeatureSource) and source.retrieval.rerank is None:
        # Evaluation only: unlabelled gallery items never count once retrieval is done, so
        # plain distances skip them (dropping columns keeps the gallery order and hence the
        # tie-break). Re-ranking and DBA/QE still see every item, and so do distance files
        # and `reid search`, whose galleries are unlabelled.
        r = source.retrieval
        q, g = r.prepare(source.query_feats, source.gallery_feats, dev, options.budget)
        keep = np.flatnonzero(gallery.pids != -1)
        if keep.size < len(gallery):
            g = g[torch.as_tensor(keep, device=dev)]
            gallery = Labels(gallery.pids[keep], gallery.camids[keep], [])
        blocks = r.blocks(q, g, options.budget)
    else:
        blocks = source.blocks(dev, options.budget)
    result = evaluate_blocks(blocks, source.query.pids, source.query.camids, gallery.pids,
                             gallery.camids, options, dev)
    for key, value in source.retrieval.describe().items():
        setattr(result, key, value)
    return result


def evaluate_features(
    query_feats: np.ndarray | torch.Tensor,
    gallery_feats: np.ndarray | torch.Tensor,
    qpids: np.ndarray,
    qcams: np.ndarray,
    gpids: np.ndarray,
    gcams: np.ndarray,
    retrieval: Retrieval = Retrieval(),
    *,
    options: EvalOptions = EvalOptions(),
    device: str | torch.device | None = "cpu",
) -> EvaluationResult:
    """Evaluate query against gallery features (optionally DBA, QE, then re-ranking)."""
    def labels(pids: np.ndarray, cams: np.ndarray) -> Labels:
        return Labels(np.asarray(pids, dtype=np.int64), np.asarray(cams, dtype=np.int64), [])

    source = FeatureSource(query_feats, gallery_feats, labels(qpids, qcams),
                           labels(gpids, gcams), retrieval)
    return evaluate_source(source, options, device)


def evaluate_path(
    path: str | os.PathLike[str],
    retrieval: Retrieval = Retrieval(),
    *,
    query_split: str = "query",
    gallery_split: str = "gallery",
    options: EvalOptions = EvalOptions(),
    device: str | torch.device | None = "cpu",
) -> EvaluationResult:
    """A bank's two splits or a distance file (recognised by its `format` attribute)."""
    with open_source(path, retrieval, query_split=query_split,
                     gallery_split=gallery_split) as source:
        result = evaluate_source(source, options, device)
    result.source = str(source.path)
    return result
