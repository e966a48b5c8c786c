"""Slow, dense references written from the papers, and checks of the references themselves.

The other retrieval tests compare the library against these: the Market-1501 protocol as a
per-query loop over a full stable argsort, and the classic dense k-reciprocal re-ranking
(Zhong et al. 2017) on the whole (Q+G) x (Q+G) matrix, in float64 after the distances.
"""

from __future__ import annotations

import numpy as np
import torch

from reidcli.retrieval.distances import prepare_features, sqdist


def ref_evaluate(dist: np.ndarray, qpids, qcams, gpids, gcams, max_rank: int = 50) -> dict:
    """Per query: drop same pid + same camera and pid -1, stable argsort, read the hits."""
    aps, inps, cmcs = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((gpids[order] == qpids[i]) & (gcams[order] == qcams[i])) & (gpids[order] != -1)
        hits = (gpids[order][keep] == qpids[i]).astype(np.float64)
        if not hits.any():
            continue
        ranks = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
        cmc = np.zeros(max_rank)
        if ranks[0] <= max_rank:
            cmc[ranks[0] - 1:] = 1
        cmcs.append(cmc)
    return {"mAP": float(np.mean(aps)), "mINP": float(np.mean(inps)),
            "cmc": np.mean(cmcs, axis=0), "num_valid": len(aps)}


def dense_sqdist(x: np.ndarray, y: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """The full float32 matrix, computed by the library's own formula in one piece."""
    return sqdist(prepare_features(x, metric), prepare_features(y, metric)).numpy()


def ref_rerank(qf: np.ndarray, gf: np.ndarray, k1: int, k2: int, lam: float,
               metric: str = "euclidean") -> np.ndarray:
    """Classic dense k-reciprocal re-ranking; returns the Q x G final distances."""
    nq = qf.shape[0]
    feats = np.concatenate([qf, gf])
    n = feats.shape[0]
    d = dense_sqdist(feats, feats, metric)                      # float32, like the original
    colmax = d.max(axis=0)
    colmax[colmax == 0] = 1
    orig = (d / colmax).T                                         # float32 division
    rank = np.argsort(orig, axis=1, kind="stable")
    orig64 = orig.astype(np.float64)

    def recip(i: int, k: int) -> np.ndarray:
        fwd = rank[i, :k + 1]
        back = rank[fwd, :k + 1]
        return fwd[np.any(back == i, axis=1)]

    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        exp = list(r)
        for c in r:
            rc = recip(c, int(round(k1 / 2)))
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                exp.extend(rc)
        exp = np.unique(np.asarray(exp, dtype=np.int64))
        w = np.exp(-orig64[i, exp])
        v[i, exp] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jac = np.zeros((nq, n))
    for i in range(nq):
        m = np.minimum(v[i][None, :], v).sum(axis=1)
        jac[i] = 1 - m / (2 - m)
    final = jac * (1 - lam) + orig64[:nq] * lam
    return final[:, nq:]


def ref_dba(g: np.ndarray, k: int, normalize: bool) -> np.ndarray:
    d = dense_sqdist(g, g)
    np.fill_diagonal(d, np.inf)
    out = np.stack([(g[i] + g[np.argsort(d[i], kind="stable")[:k]].sum(0)) / (k + 1)
                    for i in range(len(g))])
    return out / np.linalg.norm(out, axis=1, keepdims=True) if normalize else out


def ref_qe(q: np.ndarray, g: np.ndarray, k: int, normalize: bool) -> np.ndarray:
    d = dense_sqdist(q, g)
    out = np.stack([(q[i] + g[np.argsort(d[i], kind="stable")[:k]].sum(0)) / (k + 1)
                    for i in range(len(q))])
    return out / np.linalg.norm(out, axis=1, keepdims=True) if normalize else out


def reid_labels(rng: np.random.Generator, nq: int, ng: int, ids: int, cams: int):
    """Labels with the protocol's corner cases: distractors (0), junk (-1), same-camera hits."""
    qp = rng.integers(1, ids + 1, nq)
    qc = rng.integers(1, cams + 1, nq)
    gp = rng.integers(1, ids + 1, ng)
    gp[rng.random(ng) < 0.1] = 0
    gp[rng.random(ng) < 0.1] = -1
    gc = rng.integers(1, cams + 1, ng)
    return qp, qc, gp, gc


def test_reference_evaluate_hand_example() -> None:
    # Query pid 1 cam 1. Gallery order by distance: [neg, pos(cam2), junk(same cam),
    # pos(cam3), -1 item]. Valid ranks of positives: 2 and 3.
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.05]])
    gp = np.array([5, 1, 1, 1, -1])
    gc = np.array([2, 2, 1, 3, 2])
    r = ref_evaluate(dist, np.array([1]), np.array([1]), gp, gc, max_rank=5)
    assert np.isclose(r["mAP"], (1 / 2 + 2 / 3) / 2)
    assert np.isclose(r["mINP"], 2 / 3)
    assert r["cmc"].tolist() == [0, 1, 1, 1, 1]


def test_reference_rerank_is_symmetric_in_identical_items() -> None:
    # Two identical queries must get identical re-ranked rows.
    rng = np.random.default_rng(0)
    g = rng.integers(-3, 4, (30, 4)).astype(np.float32)
    q = np.stack([g[0], g[0]])
    out = ref_rerank(q, g, 5, 3, 0.3)
    assert np.allclose(out[0], out[1])
    assert torch.isfinite(torch.as_tensor(out)).all()
