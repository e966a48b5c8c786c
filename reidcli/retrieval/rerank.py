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
    order_keys,
    pair_sqdist,
    sq_norms,
    sqdist,
    stable_topk,
)

log = logging.getLogger(__name__)

# Upper bound on expanded (row, column) entries handled at once in the sparse steps.
_SPARSE_BLOCK = 1_000_000


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
    # start - (number of entries before this range), per range, then one gather: the
    # position of entry e is e + that.
    shift = starts - (counts.cumsum(0) - counts)
    pos = torch.arange(owner.numel(), device=starts.device).add_(shift.index_select(0, owner))
    return pos, owner


def _safe(m: torch.Tensor) -> torch.Tensor:
    return torch.where(m > 0, m, torch.ones_like(m))


def _rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for an index tensor of any shape: index_select is several times faster on CPU
    than advanced indexing for these row gathers."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def _normalised_topk(t: torch.Tensor, m: torch.Tensor, length: int,
                     shift: torch.Tensor | None = None) -> torch.Tensor:
    """Top-`length` columns of clamp(t + shift, 0) / m (row-wise), stable ties.

    Without `shift`, t is taken as the distance itself (no shift, no clamp).

    That value is a non-decreasing function of t within a row (float rounding is monotone),
    so the order can only differ from t's order by merging close values into ties, which
    the stable tie-break resolves by column. So: take one extra candidate from t, form the
    exact normalised values of the candidates only, re-sort them by (value, column) keys,
    and redo a row in full when the first excluded candidate ties with the last included
    one (then the tie may continue outside the candidates).
    """
    n = t.shape[1]
    probe = min(length + 1, n)
    tv, idx = torch.topk(t, probe, dim=1, largest=False, sorted=False)
    if shift is not None:
        tv.add_(shift.unsqueeze(1)).clamp_(min=0.0)
    nv = tv.div_(m.unsqueeze(1))
    order = order_keys(nv, idx).sort(dim=1).indices
    idx, nv = idx.gather(1, order), nv.gather(1, order)
    width = min(length, n)
    out = idx[:, :width].contiguous()
    if probe > width:
        redo = torch.nonzero(nv[:, width] == nv[:, width - 1]).flatten()
        if redo.numel():
            full = t[redo]
            if shift is not None:
                full.add_(shift[redo].unsqueeze(1)).clamp_(min=0.0)
            full.div_(m[redo].unsqueeze(1))
            out[redo] = stable_topk(full, width)[1]
    return out


def neighbour_lists(x: torch.Tensor, length: int, budget: int = DEFAULT_CHUNK_BYTES,
                    normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-`length` lists of the normalised distances, row maxima) for all rows of `x`.

    With `normalise=False` the lists rank the plain squared distances and the returned
    maxima are all 1 (the Jaccard distance of cluster-contrast training, which searches
    the raw distances and weights V by them directly).
    """
    n = x.shape[0]
    x_sq = sq_norms(x)
    lists = torch.empty(n, min(length, n), dtype=torch.int64, device=x.device)
    rowmax = torch.empty(n, dtype=torch.float32, device=x.device)
    for a, b in iter_row_chunks(n, n, budget, bytes_per_elem=8):
        # The first half of `sqdist` only: the row's own squared norm is a constant shift
        # (then a clamp), so the row maximum and the neighbour candidates can be read off
        # t directly and the full distance block never needs the two extra passes.
        t = torch.addmm(x_sq.unsqueeze(0), x[a:b], x.T, alpha=-2.0)
        m = t.amax(dim=1).add_(x_sq[a:b]).clamp_(min=0.0)  # amax: no argmax, ~3x faster
        if not normalise:
            m.fill_(1.0)
        rowmax[a:b] = m
        lists[a:b] = _normalised_topk(t, _safe(m), length, shift=x_sq[a:b])
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
        back = _rows(fwd, fwd[a:b])
        me = torch.arange(a, b, device=lists.device).view(-1, 1, 1)
        mask[a:b] = (back == me).any(dim=-1)
    return fwd, mask


def expansion_pairs(lists: torch.Tensor, k1: int, block: int = 8192
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) of every k-reciprocal expansion set, sorted by row then column, no repeats."""
    n = lists.shape[0]
    f1, m1 = reciprocal_mask(lists, k1)
    fh, mh = reciprocal_mask(lists, round(k1 / 2))
    size_h = mh.sum(dim=1)
    rows_out, cols_out = [], []
    for a in range(0, n, block):
        b = min(n, a + block)
        r1, ok1 = f1[a:b], m1[a:b]
        cand_lists, cand_ok = _rows(fh, r1), _rows(mh, r1)  # B x W1 x Wh: R(c, k1/2) of c
        # Membership in R(i, k1) by binary search in i's sorted reciprocal list.
        r1_sorted = torch.where(ok1, r1, n).sort(dim=1).values
        flat = cand_lists.reshape(b - a, -1)
        at = torch.searchsorted(r1_sorted, flat).clamp_(max=r1.shape[1] - 1)
        member = (r1_sorted.gather(1, at) == flat).view_as(cand_ok)
        inter = (member & cand_ok).sum(dim=-1)
        # |R(c) ∩ R(i)| > 2/3 |R(c)|, in integers to avoid any rounding question.
        take = ok1 & (3 * inter > 2 * _rows(size_h, r1))
        # Sort each row's candidate columns (at most W1 + W1*Wh of them) and drop repeats:
        # small per-row sorts instead of one large global sort.
        own = torch.where(ok1, r1, n)
        ext = torch.where(take.unsqueeze(-1) & cand_ok, cand_lists, n).flatten(1)
        merged = torch.cat([own, ext], dim=1).sort(dim=1).values
        keep = merged < n
        keep[:, 1:] &= merged[:, 1:] != merged[:, :-1]
        pos = keep.view(-1).nonzero().squeeze(1)
        rows_out.append(pos // merged.shape[1] + a)
        cols_out.append(merged.view(-1).index_select(0, pos))
    return torch.cat(rows_out), torch.cat(cols_out)


def build_v(x: torch.Tensor, rowmax: torch.Tensor, lists: torch.Tensor, k1: int) -> SparseRows:
    """V[i, j] = exp(-d_ij / max_i) over i's expansion set, normalised to sum 1 per row."""
    n = x.shape[0]
    rows, cols = expansion_pairs(lists, k1)
    d = pair_sqdist(x, sq_norms(x), rows, cols) / _safe(rowmax).index_select(0, rows)
    w = torch.exp(-d)
    total = torch.zeros(n, dtype=w.dtype, device=w.device).index_add_(0, rows, w)
    return SparseRows.from_sorted(rows, cols, w / total.index_select(0, rows), n)


def _padded(v: SparseRows, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """V as N x W arrays (columns padded with n, values with 0), W = most non-zeros in a row."""
    counts = v.indptr[1:] - v.indptr[:-1]
    width = max(1, int(counts.max()) if n else 1)
    rows = torch.repeat_interleave(torch.arange(n, device=v.cols.device), counts)
    at = torch.arange(v.nnz, device=v.cols.device) - v.indptr.index_select(0, rows)
    at.add_(rows * width)
    cols = torch.full((n, width), n, dtype=torch.int64, device=v.cols.device)
    vals = torch.zeros((n, width), dtype=v.vals.dtype, device=v.vals.device)
    cols.view(-1).index_copy_(0, at, v.cols)
    vals.view(-1).index_copy_(0, at, v.vals)
    return cols, vals


def local_query_expansion(v: SparseRows, lists: torch.Tensor, k2: int) -> SparseRows:
    """V[i] <- mean of V over i's top-k2 list (the classic skips this step when k2 == 1)."""
    n = lists.shape[0]
    if k2 == 1:
        return v
    w = min(k2, lists.shape[1])
    pcols, pvals = _padded(v, n)
    span = w * pcols.shape[1]
    step = max(1, _SPARSE_BLOCK // span)
    out_rows, out_cols, out_vals = [], [], []
    for a in range(0, n, step):
        b = min(n, a + step)
        nb = lists[a:b, :w]
        cols, order = _rows(pcols, nb).reshape(b - a, span).sort(dim=1)
        vals = _rows(pvals, nb).reshape(b - a, span).gather(1, order)
        # Equal columns are now adjacent: number the groups and sum each one.
        start = cols < n
        start[:, 1:] &= cols[:, 1:] != cols[:, :-1]
        group = (start.cumsum(dim=1) - 1).clamp_(min=0)
        sums = torch.zeros_like(vals).scatter_add_(1, group, vals)
        pos = start.view(-1).nonzero().squeeze(1)
        r = pos // span
        out_rows.append(r + a)
        out_cols.append(cols.view(-1).index_select(0, pos))
        at = group.view(-1).index_select(0, pos).add_(r * span)
        out_vals.append(sums.view(-1).index_select(0, at) / w)
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
        picked = sel.nonzero().squeeze(1)
        cols = v.cols.index_select(0, picked)
        picked = picked.index_select(0, torch.argsort(cols, stable=True))
        colptr = torch.zeros(n + 1, dtype=torch.int64, device=cols.device)
        colptr[1:] = torch.bincount(cols, minlength=n).cumsum(0)
        return cls(colptr, rows.index_select(0, picked) - num_query,
                   v.vals.index_select(0, picked))


def jaccard_block(v: SparseRows, inv: InvertedGallery, a: int, b: int, num_gallery: int
                  ) -> torch.Tensor:
    """Jaccard distances of queries a..b to every gallery item: 1 - m / (2 - m)."""
    m = jaccard_overlap(v, inv, a, b, num_gallery)
    # 1 - m / (2 - m), in place: these blocks are the largest arrays of the whole algorithm.
    denom = torch.sub(2.0, m)
    return m.div_(denom).neg_().add_(1.0)


def jaccard_overlap(v: SparseRows, inv: InvertedGallery, a: int, b: int, num_gallery: int
                    ) -> torch.Tensor:
    """m = sum_j min(V[q, j], V[g, j]) for queries a..b and every gallery item g."""
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
        src, owner = _gather_ranges(inv.colptr.index_select(0, qcol[s:e]), counts[s:e])
        mins = torch.minimum(qval[s:e].index_select(0, owner), inv.vals.index_select(0, src))
        target = qrow[s:e].index_select(0, owner).mul_(num_gallery)
        m.index_add_(0, target.add_(inv.items.index_select(0, src)), mins)
        s = e
    return m.view(b - a, num_gallery)


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
    for a, b in iter_row_chunks(nq, ng, budget, bytes_per_elem=24):
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
