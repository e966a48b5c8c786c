"""P x K batches over pseudo labels with a fixed number of iterations per epoch.

Cluster-contrast training draws `iters` batches per epoch whatever the number of clustered
images (the reference wraps its sampler in an `IterLoader` of length `--iters`). Here the
PK plans of `reidcli.data.sampler.PKSampler` are concatenated round after round (each round
a fresh plan, every clustered image about once) and cut at `iters` batches; round r of
epoch e uses the PK plan number e * (iters + 1) + r, so the batches depend only on
(seed, epoch) and every rank of a distributed run draws the same global batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

from reidcli.data.sampler import PKSampler


class FixedIterations(Sampler[list[int]]):
    """`iters` PK batches per epoch over `labels` (items labelled -1 are never drawn)."""

    def __init__(self, labels: Sequence[int], p: int, k: int, iters: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if iters < 1:
            raise ValueError(f"iterations per epoch must be >= 1, got {iters}")
        self.pk = PKSampler(labels, p=p, k=k, seed=seed, rank=rank, world_size=world_size)
        self.iters = iters
        self.epoch = 0

    @property
    def seed(self) -> int:
        return self.pk.seed

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        done = 0
        for r in range(self.iters):
            self.pk.set_epoch(self.epoch * (self.iters + 1) + r)
            for batch in self.pk:
                yield batch
                done += 1
                if done == self.iters:
                    return
        # Every round has at least one batch (PKSampler needs P groups), so `iters` rounds
        # always suffice; reaching this line would be a bug.
        raise AssertionError("FixedIterations ran out of rounds")

    def __len__(self) -> int:
        return self.iters
