"""Synthetic feature banks with ReID structure, for tests and benchmarks.

Identities are Gaussian clusters seen from several cameras (each camera adds its own
offset, so same-camera matches are easier, as in real data); the gallery also holds
distractors (pid 0, unrelated clusters that stay in the ranking as negatives) and junk
(pid -1, ignored by the protocol but part of the search for re-ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidcli.retrieval.bank import Split


@dataclass(frozen=True)
class SyntheticSpec:
    num_query: int
    num_gallery: int
    num_ids: int
    dim: int = 256
    num_cams: int = 6
    distractor_frac: float = 0.05
    junk_frac: float = 0.05
    noise: float = 0.6
    cam_shift: float = 0.3
    seed: int = 0


def synthetic_splits(spec: SyntheticSpec, dtype: str = "float32") -> dict[str, Split]:
    """`query` and `gallery` splits drawn from `spec` (deterministic for a given seed)."""
    rng = np.random.default_rng(spec.seed)
    d = spec.dim
    centres = rng.standard_normal((spec.num_ids, d)).astype(np.float32)
    cam_bias = (spec.cam_shift * rng.standard_normal((spec.num_cams, d))).astype(np.float32)

    def draw(pids: np.ndarray, cams: np.ndarray) -> np.ndarray:
        base = np.zeros((len(pids), d), dtype=np.float32)
        labelled = pids > 0
        base[labelled] = centres[pids[labelled] - 1]
        # Distractors and junk get clusters of their own: nothing in the query matches them.
        n_other = int((~labelled).sum())
        base[~labelled] = rng.standard_normal((n_other, d)).astype(np.float32)
        noise = spec.noise * rng.standard_normal((len(pids), d)).astype(np.float32)
        return base + cam_bias[cams - 1] + noise

    n_distr = int(round(spec.num_gallery * spec.distractor_frac))
    n_junk = int(round(spec.num_gallery * spec.junk_frac))
    n_lab = spec.num_gallery - n_distr - n_junk
    g_pids = np.concatenate([
        rng.integers(1, spec.num_ids + 1, n_lab), np.zeros(n_distr, np.int64),
        -np.ones(n_junk, np.int64)])
    g_pids = rng.permutation(g_pids)
    g_cams = rng.integers(1, spec.num_cams + 1, spec.num_gallery)
    q_pids = rng.integers(1, spec.num_ids + 1, spec.num_query)
    q_cams = rng.integers(1, spec.num_cams + 1, spec.num_query)
    out = {}
    for name, pids, cams in (("query", q_pids, q_cams), ("gallery", g_pids, g_cams)):
        feats = draw(pids, cams).astype(dtype)
        paths = [f"{name}/{p:05d}_c{c}_{i:07d}.jpg"
                 for i, (p, c) in enumerate(zip(pids, cams, strict=True))]
        out[name] = Split(name, feats, pids.astype(np.int64), cams.astype(np.int64), paths)
    return out
