"""PK identity sampler: batches of P identities x K images, for triplet training.

What one epoch is (the definition TransReID's RandomIdentitySampler uses): every identity's
images are shuffled and cut into chunks of K, dropping a remainder shorter than K; an
identity with fewer than K images gives one chunk drawn with replacement. Batches are then
formed by repeatedly picking P distinct identities among those with chunks left and taking
one chunk of each, until fewer than P identities have chunks left. So an epoch shows about
every image once (about `num_images / (P*K)` batches) and identities appear in proportion
to their image counts. The exact number of batches depends on the draw; `len()` gives it
for the current epoch.

Joint training over several datasets draws over the union as above (so each dataset's
share follows its image count). With `domains` (the dataset of each item) and
`balance=True`, every batch instead gives each dataset an equal share of its P identities
(P // D each, the remainder rotating over the datasets batch by batch); a dataset whose
chunks run out starts a fresh shuffled round of them, so small datasets are repeated rather
than dropped. The epoch keeps the unbalanced number of batches.

Determinism: the plan depends only on (seed, epoch). In distributed mode every rank builds
the same plan from the shared seed and yields its own contiguous slice of each batch:
rank r gets `batch[r*B/W:(r+1)*B/W]` with B = P*K and W = world_size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


class PKSampler(Sampler[list[int]]):
    """Yields lists of dataset indices; pass it as a DataLoader's `batch_sampler`.

    `pids[i]` is the identity of item i; items with a negative pid (unlabelled) are never
    sampled. Call `set_epoch(e)` before each epoch to get a new, reproducible order.
    """

    def __init__(
        self,
        pids: Sequence[int],
        p: int = 16,
        k: int = 4,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        domains: Sequence[int] | None = None,
        balance: bool = False,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"P and K must be positive, got P={p}, K={k}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad rank {rank} for world size {world_size}")
        if (p * k) % world_size:
            raise ValueError(f"batch P*K = {p * k} does not split evenly over {world_size} ranks")
        if (p * k // world_size) % k:
            # A rank would hold an identity's images only partly: fewer positives per anchor.
            log.warning("P*K/world_size = %d is not a multiple of K = %d", p * k // world_size, k)
        by_pid: dict[int, list[int]] = {}
        for index, pid in enumerate(pids):
            if pid >= 0:
                by_pid.setdefault(int(pid), []).append(index)
        if len(by_pid) < p:
            raise ValueError(f"PK sampling needs at least P={p} identities, got {len(by_pid)}")
        self._groups = [np.asarray(by_pid[pid], dtype=np.int64) for pid in sorted(by_pid)]
        # Identities (positions in _groups) per dataset, for balanced sampling.
        self._domains: list[list[int]] = []
        if balance and domains is not None:
            of_pid = {int(pids[i]): int(domains[i]) for i in range(len(pids)) if pids[i] >= 0}
            for d in sorted(set(of_pid.values())):
                self._domains.append([g for g, pid in enumerate(sorted(by_pid))
                                      if of_pid[pid] == d])
            need = -(-p // len(self._domains))
            small = [len(ids) for ids in self._domains if len(ids) < need]
            if small:
                raise ValueError(f"balanced sampling gives each of {len(self._domains)} datasets "
                                 f"up to {need} identities per batch; one has only {small[0]}")
        self.p, self.k, self.seed = p, k, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._plan: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chunks(self, rng: np.random.Generator) -> list[list[np.ndarray]]:
        return [self._chunks_of(rng, idx) for idx in self._groups]

    def _chunks_of(self, rng: np.random.Generator, idx: np.ndarray) -> list[np.ndarray]:
        if len(idx) < self.k:
            return [rng.choice(idx, size=self.k, replace=True)]
        order = rng.permutation(idx)
        n = len(order) // self.k
        return [order[i * self.k : (i + 1) * self.k] for i in range(n)]

    def global_batches(self) -> list[list[int]]:
        """Every rank's batches of this epoch, P*K indices each (cached per epoch)."""
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks = self._chunks(rng)
        if self._domains:
            batches = self._balanced(rng, chunks)
            self._plan = (self.epoch, batches)
            return batches
        available = [i for i, c in enumerate(chunks) if c]
        batches: list[list[int]] = []
        while len(available) >= self.p:
            picked = rng.choice(len(available), size=self.p, replace=False)
            batch: list[int] = []
            for j in picked:
                batch.extend(chunks[available[j]].pop().tolist())
            batches.append(batch)
            available = [i for i in available if chunks[i]]
        self._plan = (self.epoch, batches)
        return batches

    def _balanced(self, rng: np.random.Generator, chunks: list[list[np.ndarray]]
                  ) -> list[list[int]]:
        count = sum(len(c) for c in chunks) // self.p  # the unbalanced epoch's length
        d = len(self._domains)
        batches: list[list[int]] = []
        for b in range(count):
            batch: list[int] = []
            for j, ids in enumerate(self._domains):
                need = self.p // d + (1 if (j - b) % d < self.p % d else 0)
                available = [g for g in ids if chunks[g]]
                if len(available) < need:  # a new round of this dataset's chunks
                    for g in ids:
                        chunks[g] = self._chunks_of(rng, self._groups[g])
                    available = list(ids)
                for g in rng.choice(available, size=need, replace=False):
                    batch.extend(chunks[g].pop().tolist())
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        share = self.p * self.k // self.world_size
        lo = self.rank * share
        for batch in self.global_batches():
            yield batch[lo : lo + share]

    def __len__(self) -> int:
        return len(self.global_batches())
