"""Exact k-reciprocal re-ranking (Zhong et al., CVPR 2017) without any N x N array.

The classic algorithm builds dense (Q+G) x (Q+G) matrices, but every quantity it uses is
local: item i only looks at its own top-(k1+1) list, the lists of those neighbours, and the
top-k2 list for local query expansion; V has at most a few hundred non-zeros per row. So:

1. one chunked pass computes, for all N = Q+G items, the row maxima of the squared distance
   (the classic's column-max normalisation, by symmetry) and the top-L lists of the
   normalised distances with a stable tie-break, L = max(k1+1, k2);
2. reciprocal sets, the 2/3 expansion rule and the V weights are evaluated on those lists
   (distances of the few extra pairs are computed directly) and V is kept as sparse rows;
3. local query expansion averages sparse rows; the Jaccard term for a block of queries
   sums min(V[q,j], V[g,j]) over an inverted index of V's gallery rows;
4. final = (1 - lambda) * jaccard + lambda * normalised distance, produced block by block.

The arithmetic follows the classic algorithm step by step (float32 distances, the same
normalisation and ordering), so its results agree within float rounding. Two deliberate
differences: V is stored in float32 (the reference code used float16, an error of ~1e-3),
and a row whose distances are all zero is normalised by 1 instead of producing NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from reidcli.retrieval.distances import (
    DEFAULT_CHUNK_BYTES,
    iter_row_chunks,
    pair_sqdist,
    sq_norms,
    sqdist,
    stable_topk,
)

log = logging.getLogger(__name__)

# Upper bound on expanded (row, column) entries handled at once in the sparse steps.
_SPARSE_BLOCK = 4_000_000


@dataclass(frozen=True)
class RerankParams:
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def __post_init__(self) -> None:
        if self.k1 < 1 or self.k2 < 1:
            raise ValueError(f"k1 and k2 must be >= 1, got k1={self.k1}, k2={self.k2}")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise ValueError(f"lambda must be in [0, 1], got {self.lambda_value}")

    def to_dict(self) -> dict[str, float | int]:
        return {"k1": self.k1, "k2": self.k2, "lambda": self.lambda_value}


@dataclass
class SparseRows:
    """A row-sorted sparse N x N matrix (CSR): row pointers, column indices, values."""

    indptr: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor

    @classmethod
    def from_sorted(cls, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n: int
                    ) -> SparseRows:
        indptr = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
        indptr[1:] = torch.bincount(rows, minlength=n).cumsum(0)
        return cls(indptr, cols, vals)

    @property
    def nnz(self) -> int:
        return int(self.cols.numel())


def _gather_ranges(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the index ranges [start, start+count); also return which range each is from."""
    owner = torch.repeat_interleave(torch.arange(starts.numel(), device=starts.device), counts)
    first = counts.cumsum(0) - counts
    offset = torch.arange(owner.numel(), device=starts.device) - first[owner]
    return starts[owner] + offset, owner


def _safe(m: torch.Tensor) -> torch.Tensor:
    return torch.where(m > 0, m, torch.ones_like(m))


def neighbour_lists(x: torch.Tensor, length: int, budget: int = DEFAULT_CHUNK_BYTES
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-`length` lists of the normalised distances, row maxima) for all rows of `x`."""
    n = x.shape[0]
    x_sq = sq_norms(x)
    lists = torch.empty(n, min(length, n), dtype=torch.int64, device=x.device)
    rowmax = torch.empty(n, dtype=torch.float32, device=x.device)
    for a, b in iter_row_chunks(n, n, budget, bytes_per_elem=12):
        d = sqdist(x[a:b], x, x_sq[a:b], x_sq)
        m = d.max(dim=1).values
        rowmax[a:b] = m
        d /= _safe(m).unsqueeze(1)
        lists[a:b] = stable_topk(d, length)[1]
    return lists, rowmax


def reciprocal_mask(lists: torch.Tensor, k: int, block: int = 8192
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """R(i, k): i's top-(k+1) items (N x W) and which of them have i in their own top-(k+1)."""
    n = lists.shape[0]
    w = min(k + 1, lists.shape[1])
    fwd = lists[:, :w]
    mask = torch.empty(n, w, dtype=torch.bool, device=lists.device)
    for a in range(0, n, block):
        b = min(n, a + block)
        back = fwd[fwd[a:b]]
        me = torch.arange(a, b, device=lists.device).view(-1, 1, 1)
        mask[a:b] = (back == me).any(dim=-1)
    return fwd, mask


def expansion_pairs(lists: torch.Tensor, k1: int, block: int = 2048
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) of every k-reciprocal expansion set, sorted, without duplicates."""
    n = lists.shape[0]
    f1, m1 = reciprocal_mask(lists, k1)
    fh, mh = reciprocal_mask(lists, round(k1 / 2))
    size_h = mh.sum(dim=1)
    keys = []
    for a in range(0, n, block):
        b = min(n, a + block)
        r1, ok1 = f1[a:b], m1[a:b]
        cand_lists, cand_ok = fh[r1], mh[r1]  # B x W1 x Wh: R(c, k1/2) of each candidate c
        member = (cand_lists.unsqueeze(-1) == r1[:, None, None, :]) & ok1[:, None, None, :]
        inter = (member.any(dim=-1) & cand_ok).sum(dim=-1)
        # |R(c) ∩ R(i)| > 2/3 |R(c)|, in integers to avoid any rounding question.
        take = ok1 & (3 * inter > 2 * size_h[r1])
        rows = torch.arange(a, b, device=lists.device).unsqueeze(1)
        own = rows * n + r1
        ext_ok = take.unsqueeze(-1) & cand_ok
        ext = rows.unsqueeze(-1) * n + cand_lists
        keys.append(torch.unique(torch.cat([own[ok1], ext[ext_ok]])))
    k = torch.cat(keys)
    return k // n, k % n


def build_v(x: torch.Tensor, rowmax: torch.Tensor, lists: torch.Tensor, k1: int) -> SparseRows:
    """V[i, j] = exp(-d_ij / max_i) over i's expansion set, normalised to sum 1 per row."""
    n = x.shape[0]
    rows, cols = expansion_pairs(lists, k1)
    d = pair_sqdist(x, sq_norms(x), rows, cols) / _safe(rowmax)[rows]
    w = torch.exp(-d)
    total = torch.zeros(n, dtype=w.dtype, device=w.device).index_add_(0, rows, w)
    return SparseRows.from_sorted(rows, cols, w / total[rows], n)


def local_query_expansion(v: SparseRows, lists: torch.Tensor, k2: int) -> SparseRows:
    """V[i] <- mean of V over i's top-k2 list (the classic skips this step when k2 == 1)."""
    n = lists.shape[0]
    if k2 == 1:
        return v
    w = min(k2, lists.shape[1])
    per_row = max(1, v.nnz // max(1, n)) * w
    step = max(1, _SPARSE_BLOCK // max(1, per_row))
    out_rows, out_cols, out_vals = [], [], []
    for a in range(0, n, step):
        b = min(n, a + step)
        src_rows = lists[a:b, :w].reshape(-1)
        counts = v.indptr[src_rows + 1] - v.indptr[src_rows]
        src, owner = _gather_ranges(v.indptr[src_rows], counts)
        dest_row = torch.arange(a, b, device=lists.device).repeat_interleave(w)[owner]
        key = dest_row * n + v.cols[src]
        uniq, inverse = torch.unique(key, return_inverse=True)
        acc = torch.zeros(uniq.numel(), dtype=v.vals.dtype, device=v.vals.device)
        acc.index_add_(0, inverse, v.vals[src])
        out_rows.append(uniq // n)
        out_cols.append(uniq % n)
        out_vals.append(acc / w)
    return SparseRows.from_sorted(torch.cat(out_rows), torch.cat(out_cols), torch.cat(out_vals), n)


@dataclass
class InvertedGallery:
    """V's gallery rows grouped by column: for column j, which gallery items and values."""

    colptr: torch.Tensor
    items: torch.Tensor
    vals: torch.Tensor

    @classmethod
    def build(cls, v: SparseRows, num_query: int, n: int) -> InvertedGallery:
        rows = torch.repeat_interleave(
            torch.arange(n, device=v.cols.device), v.indptr[1:] - v.indptr[:-1])
        sel = rows >= num_query
        cols = v.cols[sel]
        order = torch.argsort(cols, stable=True)
        colptr = torch.zeros(n + 1, dtype=torch.int64, device=cols.device)
        colptr[1:] = torch.bincount(cols, minlength=n).cumsum(0)
        return cls(colptr, rows[sel][order] - num_query, v.vals[sel][order])


def jaccard_block(v: SparseRows, inv: InvertedGallery, a: int, b: int, num_gallery: int
                  ) -> torch.Tensor:
    """Jaccard distances of queries a..b to every gallery item: 1 - m / (2 - m)."""
    e0, e1 = int(v.indptr[a]), int(v.indptr[b])
    qrow = torch.repeat_interleave(
        torch.arange(b - a, device=v.cols.device), v.indptr[a + 1:b + 1] - v.indptr[a:b])
    qcol, qval = v.cols[e0:e1], v.vals[e0:e1]
    m = torch.zeros((b - a) * num_gallery, dtype=v.vals.dtype, device=v.vals.device)
    counts = inv.colptr[qcol + 1] - inv.colptr[qcol]
    ends = counts.cumsum(0)
    s = 0
    while s < qcol.numel():
        # Take as many query entries as keep the expanded pairs under the block size.
        limit = (ends[s - 1] if s else 0) + _SPARSE_BLOCK
        e = max(s + 1, int(torch.searchsorted(ends, limit, right=True)))
        src, owner = _gather_ranges(inv.colptr[qcol[s:e]], counts[s:e])
        mins = torch.minimum(qval[s:e][owner], inv.vals[src])
        m.index_add_(0, qrow[s:e][owner] * num_gallery + inv.items[src], mins)
        s = e
    m = m.view(b - a, num_gallery)
    return 1.0 - m / (2.0 - m)


def rerank_blocks(
    query: torch.Tensor,
    gallery: torch.Tensor,
    params: RerankParams = RerankParams(),
    budget: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Re-ranked query x gallery distances as (first query row, block) pairs.

    `query` and `gallery` are prepared features (`distances.prepare_features`); every
    gallery item takes part, whatever its label.
    """
    nq, ng = query.shape[0], gallery.shape[0]
    x = torch.cat([query, gallery]).contiguous()
    n = x.shape[0]
    lists, rowmax = neighbour_lists(x, max(params.k1 + 1, params.k2), budget)
    log.debug("re-ranking: neighbour lists of %d items done", n)
    v = build_v(x, rowmax, lists, params.k1)
    v = local_query_expansion(v, lists, params.k2)
    del lists
    log.debug("re-ranking: V has %d non-zeros (%.1f per row)", v.nnz, v.nnz / max(1, n))
    inv = InvertedGallery.build(v, nq, n)
    x_sq = sq_norms(x)
    g_sq = x_sq[nq:]
    lam = params.lambda_value
    for a, b in iter_row_chunks(nq, ng, budget, bytes_per_elem=16):
        orig = sqdist(query[a:b], gallery, x_sq[a:b], g_sq)
        orig /= _safe(rowmax[a:b]).unsqueeze(1)
        final = jaccard_block(v, inv, a, b, ng)
        final.mul_(1.0 - lam).add_(orig, alpha=lam)
        yield a, final


def rerank(query: torch.Tensor, gallery: torch.Tensor, params: RerankParams = RerankParams(),
           budget: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """The whole Q x G re-ranked matrix (convenience for small problems and tests)."""
    out = torch.empty(query.shape[0], gallery.shape[0], dtype=torch.float32, device=query.device)
    for a, block in rerank_blocks(query, gallery, params, budget):
        out[a:a + block.shape[0]] = block
    return out
