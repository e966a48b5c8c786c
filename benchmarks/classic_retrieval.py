"""The classic dense implementations the retrieval benchmark compares against.

Written from the papers (docs/methods.md) in the style of the widely used reference code: the
whole query x gallery matrix and a full argsort for evaluation, and dense (Q+G) x (Q+G)
arrays for k-reciprocal re-ranking (V kept in float32 here, where the reference code used
float16, so that results can be compared to 1e-5).
"""

from __future__ import annotations

import numpy as np

from reidcli.retrieval.distances import prepare_features, sqdist


def dense_distances(qf: np.ndarray, gf: np.ndarray, metric: str = "cosine") -> np.ndarray:
    return sqdist(prepare_features(qf, metric), prepare_features(gf, metric)).numpy()


def classic_evaluate(dist: np.ndarray, qpids, gpids, qcams, gcams, max_rank: int = 50) -> dict:
    """Full argsort of every row, then a per-query loop over the sorted gallery."""
    indices = np.argsort(dist, axis=1, kind="stable")
    matches = gpids[indices] == qpids[:, None]
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(dist.shape[0]):
        order = indices[i]
        keep = ~((gpids[order] == qpids[i]) & (gcams[order] == qcams[i])) & (gpids[order] != -1)
        raw = matches[i][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        last = np.flatnonzero(raw)[-1]
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = raw.cumsum() / (np.arange(raw.size) + 1.0)
        all_ap.append((precision * raw).sum() / raw.sum())
    return {"mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)),
            "cmc": np.mean(np.stack(all_cmc), axis=0).tolist(),
            "num_valid_queries": len(all_ap)}


def classic_rerank(qf: np.ndarray, gf: np.ndarray, k1: int = 20, k2: int = 6,
                   lam: float = 0.3, metric: str = "cosine") -> np.ndarray:
    """Dense k-reciprocal re-ranking with an inverted index for the Jaccard term."""
    nq = qf.shape[0]
    feats = prepare_features(np.concatenate([qf, gf]), metric)
    original = sqdist(feats, feats).numpy()
    n = original.shape[0]
    colmax = original.max(axis=0)
    colmax[colmax == 0] = 1
    original = np.transpose(original / colmax)
    v = np.zeros_like(original, dtype=np.float32)
    initial_rank = np.argsort(original, axis=1, kind="stable").astype(np.int32)
    half = int(round(k1 / 2))
    for i in range(n):
        fwd = initial_rank[i, :k1 + 1]
        back = initial_rank[fwd, :k1 + 1]
        recip = fwd[np.where(back == i)[0]]
        expansion = recip
        for c in recip:
            cf = initial_rank[c, :half + 1]
            cb = initial_rank[cf, :half + 1]
            crecip = cf[np.where(cb == c)[0]]
            if len(np.intersect1d(crecip, recip)) > 2 / 3 * len(crecip):
                expansion = np.append(expansion, crecip)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        v[i, expansion] = weight / np.sum(weight)
    original = original[:nq]
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = np.mean(v[initial_rank[i, :k2]], axis=0)
        v = v_qe
    del initial_rank
    inv_index = [np.where(v[:, j] != 0)[0] for j in range(n)]
    jaccard = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        mins = np.zeros(n, dtype=np.float32)
        nz = np.where(v[i] != 0)[0]
        for j in nz:
            rows = inv_index[j]
            mins[rows] += np.minimum(v[i, j], v[rows, j])
        jaccard[i] = 1 - mins / (2 - mins)
    final = jaccard * (1 - lam) + original * lam
    return final[:, nq:]
