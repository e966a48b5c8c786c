"""The cluster memory of cluster contrast (Dai et al.; TransReID-SSL's
`cluster-contrast-reid/clustercontrast/models/cm.py`).

One L2-normalised centroid per pseudo-label cluster, initialised with the mean of the
cluster's features. The loss of a batch is the cross-entropy of (f . centroids) / T against
the pseudo labels, f L2-normalised. The memory is not a parameter: after each optimiser
step it moves toward the batch's (normalised, detached) features, m <- mu m + (1 - mu) f,
renormalised, with mu the memory momentum (0.2 in the reference):
  hard: per cluster present in the batch, f is its instance LEAST similar to the current
        centroid (the reference's `--use-hard`, used by every TransReID-SSL script);
  mean: every instance in batch order, one after the other (the reference's plain CM).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MEMORY_UPDATES = ("hard", "mean")


class ClusterMemory:
    def __init__(self, centroids: torch.Tensor, temperature: float = 0.05,
                 momentum: float = 0.2, update: str = "hard") -> None:
        if update not in MEMORY_UPDATES:
            raise ValueError(f"memory update must be one of {MEMORY_UPDATES}, got {update!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"memory momentum must be in [0, 1], got {momentum}")
        self.centroids = F.normalize(centroids.detach().float(), dim=1)
        self.temperature = temperature
        self.momentum = momentum
        self.update_rule = update

    @classmethod
    def from_features(cls, features: torch.Tensor | np.ndarray, labels: np.ndarray,
                      **kwargs) -> ClusterMemory:
        """Centroids = mean feature of each cluster 0..C-1 (label -1 ignored), as the
        reference does with the clustering features (normalised, eval mode)."""
        x = torch.as_tensor(features).float()
        y = torch.as_tensor(labels, dtype=torch.int64)
        keep = y >= 0
        num = int(y.max()) + 1 if keep.any() else 0
        sums = torch.zeros(num, x.shape[1]).index_add_(0, y[keep], x[keep])
        counts = torch.bincount(y[keep], minlength=num).clamp_(min=1)
        return cls(sums / counts.unsqueeze(1).float(), **kwargs)

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])

    def to(self, device: torch.device | str) -> ClusterMemory:
        self.centroids = self.centroids.to(device)
        return self

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(feats.float(), dim=1) @ self.centroids.T / self.temperature

    def loss(self, feats: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy, logits) of a batch; gradients reach `feats` only."""
        logits = self.logits(feats)
        return F.cross_entropy(logits, targets), logits

    @torch.no_grad()
    def update(self, feats: torch.Tensor, targets: torch.Tensor) -> None:
        """Move the centroids of the clusters in the batch (call after the optimiser step,
        with the same forward's features, gathered over all ranks under DDP)."""
        f = F.normalize(feats.detach().float(), dim=1)
        mu = self.momentum
        if self.update_rule == "hard":
            sims = (f * self.centroids[targets]).sum(dim=1)
            for c in torch.unique(targets).tolist():
                members = torch.nonzero(targets == c).flatten()
                # argmin returns the first of equal minima, like the reference's np.argmin.
                hardest = members[torch.argmin(sims[members])]
                self._move(c, f[hardest], mu)
        else:
            for row, c in enumerate(targets.tolist()):
                self._move(c, f[row], mu)

    def _move(self, c: int, f: torch.Tensor, mu: float) -> None:
        m = self.centroids[c] * mu + f * (1.0 - mu)
        self.centroids[c] = m / m.norm()
