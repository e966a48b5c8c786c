"""Unlabelled images for pre-training: a compact path table, per-sample seeded views, sharding.

At LUPerson scale (4.2M images) a list of Python strings costs hundreds of megabytes and,
because reference counting writes to every object a worker touches, each forked worker
slowly copies it. `PathTable` keeps all paths in one NumPy byte buffer plus offsets: two
objects, shared copy-on-write for free.

Every sample's randomness (crops, colour, masks) is seeded from (seed, epoch, index), so a
view depends neither on which worker made it nor on the batch it landed in: a run resumed
mid-epoch, or sharded over a different number of processes, sees the same views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from reidcli.data.images import read_image
from reidcli.ssl.masking import MaskSpec, view_masks


class PathTable:
    """Immutable sequence of paths stored as one UTF-8 buffer and an offsets array."""

    def __init__(self, paths: Sequence[str]) -> None:
        encoded = [p.encode("utf-8") for p in paths]
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.buffer[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes + self.offsets.nbytes)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


_STEP_STREAM = 0x5EED
"""Keeps the per-step seeds apart from the per-sample ones."""


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """Seed of the training process's own random stream (drop_path) at one step."""
    entropy = [seed, _STEP_STREAM, iteration, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


class PretrainDataset(Dataset):
    """Item i -> (list of view tensors, list of global-view masks or []).

    `masking` is (token grid of a global view, MaskSpec); without it no masks are drawn.
    """

    def __init__(
        self,
        paths: PathTable,
        transform: Callable,
        seed: int,
        masking: tuple[tuple[int, int], MaskSpec] | None = None,
        n_masked_views: int = 2,
    ) -> None:
        self.paths = paths
        self.transform = transform
        self.seed = seed
        self.masking = masking
        self.n_masked_views = n_masked_views
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        s = sample_seed(self.seed, self.epoch, index)
        img = read_image(self.paths[index])
        # v2 transforms draw from torch's global generator; fork it so a worker-less
        # loader does not disturb the training process's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s)
            views = self.transform(img)
        masks: list[torch.Tensor] = []
        if self.masking is not None:
            grid, spec = self.masking
            rng = np.random.default_rng(s)
            masks = [torch.from_numpy(m) for m in view_masks(grid, self.n_masked_views, rng, spec)]
        return views, masks


def collate_views(
    batch: list[tuple[list[torch.Tensor], list[torch.Tensor]]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Stack view v of every sample into one (B, 3, h, w) tensor per view (masks likewise)."""
    views = [torch.stack(v) for v in zip(*(b[0] for b in batch), strict=True)]
    masks = [torch.stack(m) for m in zip(*(b[1] for b in batch), strict=True)]
    return views, masks


class EpochBatchSampler(Sampler[list[int]]):
    """Seeded shuffle per epoch, cut into global batches, each rank taking its slice.

    All ranks draw the same permutation (shared seed), keep whole global batches only
    (drop_last, so every rank runs the same number of steps), and rank r takes
    batch[r * B : (r + 1) * B] with B = global batch / world. `start` skips batches already
    trained on, for resuming mid-epoch.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} ranks")
        if n < batch_size:
            raise ValueError(f"{n} images cannot fill one batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + 100_003 * self.epoch)
        order = torch.randperm(self.n, generator=g)
        local = self.batch_size // self.world_size
        for b in range(self.start, self.batches_per_epoch):
            lo = b * self.batch_size + self.rank * local
            yield order[lo : lo + local].tolist()
