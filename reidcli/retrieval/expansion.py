"""Average query expansion (QE) and database-side augmentation (DBA) on prepared features.

Both replace a vector by the mean of itself and its K nearest gallery vectors (same distance
and stable tie-break as everywhere else), then re-normalise for the cosine metric. DBA runs
first and excludes the item itself from its neighbours; QE then searches the augmented
gallery. Labels are never used: every gallery item, unlabelled ones included, takes part,
as in a real search.
"""

from __future__ import annotations

import torch

from reidcli.retrieval.distances import DEFAULT_CHUNK_BYTES, Metric, knn


def _mean_with_neighbours(x: torch.Tensor, pool: torch.Tensor, idx: torch.Tensor,
                          metric: Metric) -> torch.Tensor:
    acc = x.clone()
    for t in range(idx.shape[1]):  # one neighbour rank at a time: no N x K x D temporary
        acc += pool[idx[:, t]]
    acc /= idx.shape[1] + 1
    if metric == "cosine":
        acc = torch.nn.functional.normalize(acc, dim=1)
    return acc


def query_expansion(query: torch.Tensor, gallery: torch.Tensor, k: int, metric: Metric,
                    budget: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Each query -> mean of itself and its top-k gallery items."""
    if k <= 0:
        return query
    _, idx = knn(query, gallery, k, budget=budget)
    return _mean_with_neighbours(query, gallery, idx, metric)


def database_augmentation(gallery: torch.Tensor, k: int, metric: Metric,
                          budget: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Each gallery item -> mean of itself and its k nearest other gallery items."""
    if k <= 0 or gallery.shape[0] < 2:
        return gallery
    _, idx = knn(gallery, gallery, k, exclude_self=True, budget=budget)
    return _mean_with_neighbours(gallery, gallery, idx, metric)


def expand(query: torch.Tensor, gallery: torch.Tensor, *, qe: int = 0, dba: int = 0,
           metric: Metric = "cosine", budget: int = DEFAULT_CHUNK_BYTES
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """DBA on the gallery, then QE of the queries against the augmented gallery."""
    gallery = database_augmentation(gallery, dba, metric, budget)
    query = query_expansion(query, gallery, qe, metric, budget)
    return query, gallery
