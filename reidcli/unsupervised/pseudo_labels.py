"""Pseudo labels: k-reciprocal Jaccard distances among the training images, then DBSCAN.

The arithmetic is that of cluster-contrast training (TransReID-SSL's
`cluster-contrast-reid/clustercontrast/utils/faiss_rerank.py::compute_jaccard_distance`,
after SpCL): on L2-normalised features, neighbour lists rank the plain squared distance
2 - 2 cos (no row-maximum normalisation, unlike re-ranking), each list holds the top k1
items, self included (the reference searches k1 neighbours and then slices `[:k1+1]`, which
leaves k1), V weights are softmax(-(2 - 2 cos)) over the k-reciprocal expansion set, local
query expansion averages the top-k2 rows, and the Jaccard distance is 1 - m / (2 - m) with
m = sum_j min(V[i, j], V[g, j]), clamped at 0.

The reference builds that N x N matrix densely (about 4 GB at MSMT17's 32,621 images, 40 GB
at 100,000). Here the sparse exact re-ranking code (`reidcli.retrieval.rerank`) computes it
block by block and keeps only the pairs within DBSCAN's radius, a few dozen per row; since
DBSCAN only asks which pairs are within eps, scikit-learn's DBSCAN on that sparse
precomputed graph gives exactly the labels of the dense matrix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from reidcli.retrieval.distances import DEFAULT_CHUNK_BYTES, iter_row_chunks
from reidcli.retrieval.rerank import (
    InvertedGallery,
    build_v,
    jaccard_overlap,
    local_query_expansion,
    neighbour_lists,
)

OUTLIER = -1


@dataclass(frozen=True)
class ClusterParams:
    """DBSCAN radius and core size on the Jaccard distance, and its k1/k2 (cluster-contrast
    defaults: eps 0.6 for Market-1501, 0.7 for MSMT17)."""

    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6

    def problems(self) -> list[str]:
        out = []
        if not 0.0 < self.eps < 1.0:
            out.append(f"eps must be in (0, 1) (a Jaccard distance), got {self.eps}")
        if self.min_samples < 1:
            out.append(f"min_samples must be >= 1, got {self.min_samples}")
        if self.k1 < 1 or self.k2 < 1:
            out.append(f"k1 and k2 must be >= 1, got k1={self.k1}, k2={self.k2}")
        return out


@dataclass
class PseudoLabels:
    """labels[i] in 0..num_clusters-1, or -1 for an outlier left out of this epoch."""

    labels: np.ndarray
    num_clusters: int
    graph_edges: int = 0
    seconds: float = 0.0

    @property
    def num_outliers(self) -> int:
        return int((self.labels == OUTLIER).sum())

    @property
    def outlier_share(self) -> float:
        return self.num_outliers / max(1, len(self.labels))


def _normalise(features: torch.Tensor | np.ndarray, device: torch.device | str | None
               ) -> torch.Tensor:
    x = torch.as_tensor(features).to(device or "cpu").float()
    return torch.nn.functional.normalize(x, dim=1).contiguous()


def camera_centred(features: torch.Tensor | np.ndarray, cameras: np.ndarray | None
                   ) -> torch.Tensor:
    """L2-normalised features minus their camera's mean feature, renormalised.

    A camera's colour cast and tone move every image it sees the same way, so an unadapted
    model's nearest neighbours share the camera and DBSCAN groups by camera instead of by
    identity. Removing each camera's mean feature before clustering (a camera-wise
    normalisation of the features, as camera-aware unsupervised ReID does, e.g. Wang et al.,
    "Camera-aware Proxies for Unsupervised Person Re-Identification", AAAI 2021) leaves the
    within-camera differences. Images with an unknown camera (< 0) keep their feature; with
    fewer than two known cameras there is nothing to align and the features come back as
    they are (normalised)."""
    x = torch.nn.functional.normalize(torch.as_tensor(features).float(), dim=1).clone()
    if cameras is None:
        return x
    cams = np.asarray(cameras)
    known = np.unique(cams[cams >= 0])
    if len(known) < 2:
        return x
    for cam in known:
        rows = torch.as_tensor(np.flatnonzero(cams == cam))
        x[rows] -= x[rows].mean(dim=0)
    return torch.nn.functional.normalize(x, dim=1)


def jaccard_graph(features: torch.Tensor | np.ndarray, k1: int = 30, k2: int = 6,
                  radius: float = 0.6, budget: int = DEFAULT_CHUNK_BYTES,
                  device: torch.device | str | None = None) -> sparse.csr_matrix:
    """The Jaccard distances <= `radius` as a sparse N x N matrix (rows sorted by distance,
    the diagonal stored as explicit zeros); every other pair is farther than `radius`.

    The work runs on `device` (default: the CPU); only the kept pairs come back."""
    x = _normalise(features, device)
    n = x.shape[0]
    lists, ones = neighbour_lists(x, max(k1, k2), budget, normalise=False)
    v = local_query_expansion(build_v(x, ones, lists, k1), lists, k2)
    del lists
    inv = InvertedGallery.build(v, 0, n)
    # d = 1 - m / (2 - m) <= radius  <=>  m >= 2 (1 - radius) / (2 - radius); a little slack
    # on the cheap test, then the exact distance decides.
    floor = 2.0 * (1.0 - radius) / (2.0 - radius) - 1e-6
    rows, cols, dists = [], [], []
    for a, b in iter_row_chunks(n, n, budget, bytes_per_elem=8):
        m = jaccard_overlap(v, inv, a, b, n)
        r, c = torch.nonzero(m >= floor, as_tuple=True)
        mv = m[r, c]
        d = (1.0 - mv / (2.0 - mv)).clamp_(min=0.0)
        keep = d <= radius
        rows.append(r[keep] + a)
        cols.append(c[keep])
        dists.append(d[keep])
    r = torch.cat(rows).cpu().numpy()
    c = torch.cat(cols).cpu().numpy()
    d = torch.cat(dists).cpu().numpy().astype(np.float64)
    order = np.lexsort((c, d, r))  # by row, then distance (what scikit-learn expects)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(r, minlength=n))
    return sparse.csr_matrix((d[order], c[order], indptr), shape=(n, n))


def dbscan_labels(graph: sparse.csr_matrix, eps: float, min_samples: int) -> np.ndarray:
    """scikit-learn's DBSCAN on a sparse precomputed distance graph; -1 marks outliers."""
    from sklearn.cluster import DBSCAN

    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(graph)
    return labels.astype(np.int64)


def pseudo_labels(features: torch.Tensor | np.ndarray, params: ClusterParams = ClusterParams(),
                  budget: int = DEFAULT_CHUNK_BYTES, device: torch.device | str | None = None
                  ) -> PseudoLabels:
    """Cluster `features` (N x D, any scale: they are L2-normalised here); the Jaccard
    distances are computed on `device`, DBSCAN runs on the CPU."""
    start = time.perf_counter()
    graph = jaccard_graph(features, params.k1, params.k2, params.eps, budget, device)
    labels = dbscan_labels(graph, params.eps, params.min_samples)
    clusters = int(labels.max()) + 1 if labels.size else 0
    return PseudoLabels(labels, clusters, int(graph.nnz), time.perf_counter() - start)


def label_agreement(pseudo: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Adjusted Rand index and NMI of the clustered images (outliers and unlabelled images
    left out) against known identities: a report of pseudo-label purity, never a training
    signal. Empty when nothing is left to compare."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    keep = (pseudo != OUTLIER) & (truth >= 0)
    if keep.sum() < 2:
        return {}
    return {
        "purity_ari": float(adjusted_rand_score(truth[keep], pseudo[keep])),
        "purity_nmi": float(normalized_mutual_info_score(truth[keep], pseudo[keep])),
    }
