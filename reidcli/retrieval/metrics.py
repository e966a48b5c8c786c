"""From per-query results (AP, INP, first-hit rank) to CMC, mAP, mINP and their uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CMC_POINTS = (1, 5, 10, 20)


@dataclass
class PerQuery:
    """One entry per query; queries without a positive have `npos == 0` and are skipped."""

    ap: np.ndarray
    inp: np.ndarray
    first: np.ndarray
    npos: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.npos > 0

    def subset(self, mask: np.ndarray) -> PerQuery:
        return PerQuery(self.ap[mask], self.inp[mask], self.first[mask], self.npos[mask])


def cmc_curve(first: np.ndarray, max_rank: int) -> np.ndarray:
    """Entry k-1: fraction of queries whose first positive is within the top k."""
    if first.size == 0:
        return np.zeros(max_rank)
    hits = np.bincount(np.minimum(first, max_rank + 1), minlength=max_rank + 2)[1:max_rank + 1]
    return np.cumsum(hits) / first.size


def summarize(pq: PerQuery, max_rank: int) -> dict[str, float | list[float]]:
    """mAP, mINP, the CMC curve and rank-k accuracies over the valid queries."""
    v = pq.subset(pq.valid)
    curve = cmc_curve(v.first, max(max_rank, max(CMC_POINTS)))
    n = v.ap.size
    out: dict[str, float | list[float]] = {
        "mAP": float(v.ap.mean()) if n else 0.0,
        "mINP": float(v.inp.mean()) if n else 0.0,
        "cmc": [float(x) for x in curve[:max_rank]],
    }
    for k in CMC_POINTS:
        out[f"rank{k}"] = float(curve[k - 1])
    return out


def bootstrap_ci(
    pq: PerQuery, level: float, samples: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """Percentile bootstrap over valid queries: {metric: [low, high]} at confidence `level`."""
    v = pq.subset(pq.valid)
    n = v.ap.size
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    series = {"mAP": v.ap, "mINP": v.inp}
    series.update({f"rank{k}": (v.first <= k).astype(np.float64) for k in CMC_POINTS})
    stats: dict[str, list[np.ndarray]] = {k: [] for k in series}
    # Resample in blocks so memory stays at a few tens of MB even for 10^5 queries.
    block = max(1, 4_000_000 // n)
    for s in range(0, samples, block):
        idx = rng.integers(0, n, size=(min(block, samples - s), n))
        for key, vals in series.items():
            stats[key].append(vals[idx].mean(axis=1))
    alpha = (1.0 - level) / 2.0
    out = {}
    for key, parts in stats.items():
        allv = np.concatenate(parts)
        out[key] = [float(np.quantile(allv, alpha)), float(np.quantile(allv, 1.0 - alpha))]
    return out


def per_camera(pq: PerQuery, qcams: np.ndarray, max_rank: int) -> list[dict[str, float | int]]:
    """The summary restricted to the queries of each camera."""
    rows = []
    for cam in np.unique(qcams):
        mask = qcams == cam
        sub = pq.subset(mask)
        s = summarize(sub, max_rank)
        rows.append({
            "camera": int(cam),
            "num_queries": int(mask.sum()),
            "num_valid_queries": int(sub.valid.sum()),
            "mAP": s["mAP"], "mINP": s["mINP"], "rank1": s["rank1"], "rank5": s["rank5"],
        })
    return rows
