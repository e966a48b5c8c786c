"""Ranks of the positives of a block of queries, without sorting gallery rows.

The Market-1501 protocol only needs, for each query, the rank of every positive among the
valid gallery items: rank = 1 + number of valid items that come before it in the order
(distance, gallery index). Only items no farther than the query's farthest positive can
come before a positive, so one comparison selects these candidates and the rest of the row
is never touched again. Each candidate is then placed between the query's positives (sorted
by exact (distance, index) keys) with a vectorised binary search over all rows at once, and
a histogram of those places gives every positive's rank. Cost per block: one comparison and
one selection pass over B x G, plus O(C log P) for C candidates and P positives per query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from reidcli.retrieval.distances import INT64_MAX, order_keys


@dataclass
class GalleryIndex:
    """Gallery labels arranged so that a query finds its same-pid items by binary search.

    `junk_cols` are gallery columns never counted (pid -1); `order` lists the other columns
    sorted by pid (stable), `sorted_pids` their pids.
    """

    camids: torch.Tensor
    order: torch.Tensor
    sorted_pids: torch.Tensor
    junk_cols: torch.Tensor

    @classmethod
    def build(cls, pids: np.ndarray, camids: np.ndarray, device: torch.device) -> GalleryIndex:
        pids = np.asarray(pids, dtype=np.int64)
        labelled = np.flatnonzero(pids != -1)
        order = labelled[np.argsort(pids[labelled], kind="stable")]
        return cls(
            camids=torch.as_tensor(np.asarray(camids, dtype=np.int64), device=device),
            order=torch.as_tensor(order, device=device),
            sorted_pids=torch.as_tensor(pids[order], device=device),
            junk_cols=torch.as_tensor(np.flatnonzero(pids == -1), device=device),
        )


@dataclass
class BlockMetrics:
    """Per-query results for one block: AP, INP, rank of the first hit, number of positives."""

    ap: torch.Tensor
    inp: torch.Tensor
    first: torch.Tensor
    npos: torch.Tensor


def _positives(d: torch.Tensor, qpids: torch.Tensor, qcams: torch.Tensor, gi: GalleryIndex
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mark excluded items (+inf in `d`, in place) and return (positive columns B x P, mask)."""
    b = d.shape[0]
    if gi.junk_cols.numel():
        d[:, gi.junk_cols] = float("inf")
    start = torch.searchsorted(gi.sorted_pids, qpids)
    count = torch.searchsorted(gi.sorted_pids, qpids, right=True) - start
    p = int(count.max()) if b and gi.order.numel() else 0
    ar = torch.arange(p, device=d.device)
    inside = ar < count.unsqueeze(1)
    cols = gi.order[(start.unsqueeze(1) + ar).clamp_(max=max(0, gi.order.numel() - 1))]
    same_cam = gi.camids[cols] == qcams.unsqueeze(1)
    junk = inside & same_cam
    if junk.any():
        rows = torch.arange(b, device=d.device).unsqueeze(1).expand(b, p)
        d[rows[junk], cols[junk]] = float("inf")
    return cols, inside & ~same_cam


def _count_below(pos_keys: torch.Tensor, rows: torch.Tensor, keys: torch.Tensor
                 ) -> torch.Tensor:
    """For each (row, key): how many of that row's sorted positive keys are smaller.

    A branchless lower-bound search (binary lifting) run for all candidates at once, each
    in its own row. Rows are padded with INT64_MAX, which no candidate key reaches (even
    +inf has a smaller key), so the whole padded width is searched without per-row bounds.
    """
    p = pos_keys.shape[1]
    flat = pos_keys.reshape(-1)
    base = rows * p
    pos = torch.zeros_like(rows)
    step = 1 << (p.bit_length() - 1)
    while step:
        nxt = pos + step
        probe = flat.index_select(0, (nxt - 1).clamp_(max=p - 1).add_(base))
        ok = (probe < keys) & (nxt <= p)
        pos.add_(ok * step)
        step >>= 1
    return pos


def block_metrics(
    d: torch.Tensor, qpids: torch.Tensor, qcams: torch.Tensor, gi: GalleryIndex
) -> BlockMetrics:
    """AP, INP and first-hit rank of each query of a B x G distance block (modified in place)."""
    b = d.shape[0]
    dev = d.device
    pos_cols, pos = _positives(d, qpids, qcams, gi)
    npos = pos.sum(1)
    zeros = torch.zeros(b, dtype=torch.float64, device=dev)
    first = torch.zeros(b, dtype=torch.int64, device=dev)
    if not bool(npos.any()):
        return BlockMetrics(zeros, zeros.clone(), first, npos)
    p = pos_cols.shape[1]
    qrows = torch.arange(b, device=dev).unsqueeze(1).expand_as(pos_cols)
    pos_d = d[qrows, pos_cols]
    vmax = pos_d.masked_fill(~pos, float("-inf")).amax(dim=1)
    pos_keys = order_keys(pos_d, pos_cols).masked_fill_(~pos, INT64_MAX).sort(dim=1).values
    # Candidates as flat positions, then 1-D gathers (much faster than d[r, c] on CPU).
    flat_d = d.reshape(-1)
    at = (d <= vmax.unsqueeze(1)).view(-1).nonzero().squeeze(1)
    r, c = at // d.shape[1], at % d.shape[1]
    # Bucket m holds the candidates that come after exactly m positives; the positive with
    # ordinal m (0-based) is itself in bucket m, so its rank is the count of buckets 0..m.
    bucket = _count_below(pos_keys, r, order_keys(flat_d.index_select(0, at), c))
    hist = torch.bincount(r * (p + 1) + bucket, minlength=b * (p + 1)).view(b, p + 1)
    ranks_all = hist.cumsum(dim=1)[:, :p]
    valid = torch.arange(p, device=dev) < npos.unsqueeze(1)
    ranks = ranks_all[valid]                      # query by query, nearest positive first
    rows = qrows[valid]
    ordinal = torch.arange(1, p + 1, device=dev).expand(b, p)[valid]
    ranks64 = ranks.to(torch.float64)
    ap = zeros.clone().index_add_(0, rows, ordinal.to(torch.float64) / ranks64)
    has = npos > 0
    ap[has] /= npos[has].to(torch.float64)
    first[has] = ranks_all[has, 0]
    inp = zeros.clone()
    last = (npos - 1).clamp(min=0)
    inp[has] = npos[has].to(torch.float64) / ranks_all[has, last[has]].to(torch.float64)
    return BlockMetrics(ap, inp, first, npos)
