"""Chunked distances, exact tie-breaking and k-nearest-neighbour lists.

Every consumer (evaluation, re-ranking, QE/DBA) uses the same squared euclidean distance so
their results agree bit for bit: `cosine` L2-normalises the features first (rank-equivalent
to cosine distance, as in the reference evaluation code), `euclidean` uses raw features.
Ties are always broken by column index (a stable order), via `order_keys`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean")

# Working-set budget for one block of distances (and the temporaries derived from it).
DEFAULT_CHUNK_BYTES = 128 * 2**20
INT64_MAX = torch.iinfo(torch.int64).max


def prepare_features(
    feats: np.ndarray | torch.Tensor, metric: Metric, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """float32 features on `device`, L2-normalised for the cosine metric."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    x = torch.as_tensor(np.asarray(feats) if not isinstance(feats, torch.Tensor) else feats)
    x = x.to(device=device, dtype=torch.float32)
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    return x.contiguous()


def sq_norms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(dim=1)


def sqdist(
    a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor | None = None,
    b_sq: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared euclidean distances |a|^2 + |b|^2 - 2 a.b, clamped at 0 (rounding)."""
    a_sq = sq_norms(a) if a_sq is None else a_sq
    b_sq = sq_norms(b) if b_sq is None else b_sq
    d = torch.addmm(b_sq.unsqueeze(0), a, b.T, alpha=-2.0)
    d.add_(a_sq.unsqueeze(1))
    return d.clamp_(min=0.0)


def pair_sqdist(
    x: torch.Tensor, x_sq: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
    block: int = 1 << 14,
) -> torch.Tensor:
    """Distances of the listed (row, col) pairs of `x`, same formula as `sqdist`."""
    out = torch.empty(rows.numel(), dtype=x.dtype, device=x.device)
    for s in range(0, rows.numel(), block):
        r, c = rows[s:s + block], cols[s:s + block]
        # index_select rather than x[r]: ~4x faster row gathers on CPU; small blocks keep
        # the two gathered B x D operands in cache.
        dot = torch.bmm(x.index_select(0, r).unsqueeze(1),
                        x.index_select(0, c).unsqueeze(2)).view(-1)
        out[s:s + block] = (x_sq.index_select(0, r) + x_sq.index_select(0, c) - 2.0 * dot
                            ).clamp_(min=0.0)
    return out


def rows_per_chunk(n_cols: int, bytes_per_elem: int = 24,
                   budget: int = DEFAULT_CHUNK_BYTES) -> int:
    """How many rows of `n_cols` columns fit the working-set budget (at least 1)."""
    return max(1, budget // max(1, n_cols * bytes_per_elem))


def order_keys(d: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """int64 keys that sort exactly like (distance, column): a stable, tie-free order.

    The float32 bit pattern, read as an integer, already sorts like the value for
    non-negative floats; negative floats (rare: only in foreign distance files) get their
    magnitude bits flipped and -0.0 is folded onto +0.0. The column index fills the low
    32 bits.
    """
    bits = d.to(torch.float32).contiguous().view(torch.int32)
    keys = bits.to(torch.int64)
    if bool((bits < 0).any()):
        neg = keys < 0
        keys = torch.where(neg, keys ^ 0x7FFFFFFF, keys)
        keys[neg & (keys == -1)] = 0  # was -0.0
    keys <<= 32
    keys |= cols.to(torch.int64)
    return keys


def stable_topk(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest entries of each row, ordered by (value, column), as a stable argsort.

    `torch.topk` does not define the order of equal values, so it only proposes candidates:
    they are re-sorted by exact keys, and rows where a tie straddles the k-th place (rare)
    are recomputed from exact keys over the whole row.
    """
    n = d.shape[1]
    k = min(k, n)
    probe = min(k + 1, n)
    vals, idx = torch.topk(d, probe, dim=1, largest=False, sorted=True)
    keys = order_keys(vals, idx)
    keys, perm = keys.sort(dim=1)
    vals, idx = vals.gather(1, perm), idx.gather(1, perm)
    if probe > k:
        straddle = torch.nonzero(vals[:, k - 1] == vals[:, k]).flatten() if k > 0 else None
        if straddle is not None and straddle.numel():
            cols = torch.arange(n, device=d.device)
            full = order_keys(d[straddle], cols)
            fk = torch.topk(full, k, dim=1, largest=False, sorted=True).values
            fi = fk & 0xFFFFFFFF
            idx[straddle, :k] = fi
            vals[straddle, :k] = d[straddle].gather(1, fi)
    return vals[:, :k], idx[:, :k]


def iter_row_chunks(n_rows: int, n_cols: int, budget: int = DEFAULT_CHUNK_BYTES,
                    bytes_per_elem: int = 24) -> Iterator[tuple[int, int]]:
    step = rows_per_chunk(n_cols, bytes_per_elem, budget)
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def knn(
    x: torch.Tensor, y: torch.Tensor, k: int, *, exclude_self: bool = False,
    budget: int = DEFAULT_CHUNK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of `x`: its k nearest rows of `y` (distances, indices), stable ties.

    `exclude_self` (x is y) drops the item itself, so a row's list holds k other items.
    """
    x_sq, y_sq = sq_norms(x), sq_norms(y)
    k_eff = min(k, y.shape[0] - (1 if exclude_self else 0))
    out_d = torch.empty(x.shape[0], k_eff, dtype=torch.float32, device=x.device)
    out_i = torch.empty(x.shape[0], k_eff, dtype=torch.int64, device=x.device)
    for a, b in iter_row_chunks(x.shape[0], y.shape[0], budget, bytes_per_elem=8):
        d = sqdist(x[a:b], y, x_sq[a:b], y_sq)
        if exclude_self:
            d[torch.arange(b - a, device=x.device), torch.arange(a, b, device=x.device)] = \
                float("inf")
        vals, idx = stable_topk(d, k_eff)
        out_d[a:b], out_i[a:b] = vals, idx
    return out_d, out_i
