"""BNNeck head: BatchNorm1d with a frozen bias, then a bias-free ID classifier."""

from __future__ import annotations

import torch
from torch import nn


class BNNeck(nn.Module):
    """Triplet loss sees the features before the BN, the ID classifier sees them after.

    The BN bias is frozen at zero (the BoT recipe): a shift would not change the softmax
    much but would move the post-BN features away from the origin for retrieval.
    """

    def __init__(self, dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(False)
        self.classifier: nn.Linear | None = None
        if num_classes > 0:
            self.classifier = nn.Linear(dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Post-BN feature."""
        return self.bn(feat)

    def logits(self, feat: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("this model has no classifier (num_classes=0)")
        return self.classifier(self.bn(feat))
