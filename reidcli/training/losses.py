"""The TransReID losses: ID cross-entropy and batch-hard triplet, combined over JPM branches.

All losses are computed in float32 even when the forward pass ran under autocast: the
triplet distances subtract large squared norms, which loses every significant digit in
fp16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def euclidean_distances(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise euclidean distances (m, n) between the rows of `x` (m, d) and `y` (n, d).

    The clamp keeps the square root differentiable on the diagonal, where the expanded
    form can come out as zero or slightly negative.
    """
    xx = x.pow(2).sum(dim=1, keepdim=True)
    yy = y.pow(2).sum(dim=1, keepdim=True).t()
    sq = xx + yy - 2.0 * (x @ y.t())
    return sq.clamp(min=1e-12).sqrt()


def hardest_pairs(feats: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """For each anchor with at least one negative: (hardest positive, hardest negative) distance.

    The anchor counts as its own positive (distance ~0), as in the reference code, so an
    anchor whose identity appears once still has a defined d_ap. Anchors without any
    negative in the batch (a single-identity batch) are dropped.
    """
    dist = euclidean_distances(feats, feats)
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    valid = torch.isfinite(d_an)
    return d_ap[valid], d_an[valid]


class TripletLoss(nn.Module):
    """Batch-hard triplet loss on un-normalised features.

    `margin=None` is the soft margin of all published TransReID configurations:
    mean(log(1 + exp(d_ap - d_an))); a number gives the hinge mean(max(0, d_ap - d_an + m)).
    """

    def __init__(self, margin: float | None = None) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, feats: Tensor, targets: Tensor) -> Tensor:
        d_ap, d_an = hardest_pairs(feats.float(), targets)
        if d_ap.numel() == 0:
            # No anchor has a negative: the loss is undefined, contribute nothing but keep
            # the graph connected so DDP still sees a gradient for every parameter.
            return feats.sum() * 0.0
        if self.margin is None:
            return F.softplus(d_ap - d_an).mean()
        return F.relu(d_ap - d_an + self.margin).mean()


class IdLoss(nn.Module):
    """Softmax cross-entropy over training identities, with optional label smoothing.

    torch's `label_smoothing=eps` targets (1-eps)*onehot + eps/C, the same distribution as
    the reference CrossEntropyLabelSmooth.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)


def jpm_combine(values: Sequence[Tensor]) -> Tensor:
    """0.5 * L(global) + 0.5 * mean_i L(local_i); a single (global-only) value passes through."""
    if not values:
        raise ValueError("no branch outputs to combine")
    if len(values) == 1:
        return values[0]
    local = torch.stack(list(values[1:])).mean()
    return 0.5 * values[0] + 0.5 * local


@dataclass
class LossParts:
    """The total loss (for backward) and its two terms (for logging)."""

    total: Tensor
    id: Tensor
    triplet: Tensor


class ReidLoss(nn.Module):
    """id_weight * ID + triplet_weight * triplet, each combined over the JPM branches.

    `logits` and `feats` list the global branch first, then the JPM local branches. ID
    losses take the post-BNNeck classifier logits, triplet losses the pre-BN features.
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        margin: float | None = None,
        id_weight: float = 1.0,
        triplet_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.id_loss = IdLoss(label_smoothing)
        self.triplet_loss = TripletLoss(margin)
        self.id_weight = id_weight
        self.triplet_weight = triplet_weight

    def forward(
        self, logits: Sequence[Tensor], feats: Sequence[Tensor], targets: Tensor
    ) -> LossParts:
        id_term = jpm_combine([self.id_loss(s, targets) for s in logits])
        tri_term = jpm_combine([self.triplet_loss(f, targets) for f in feats])
        total = self.id_weight * id_term + self.triplet_weight * tri_term
        return LossParts(total=total, id=id_term.detach(), triplet=tri_term.detach())


def accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    """Top-1 identity accuracy of the global branch, as the reference logs it."""
    return (logits.argmax(dim=1) == targets).float().mean()
