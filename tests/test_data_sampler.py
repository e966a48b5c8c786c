"""PK sampler: batch composition, replacement for small ids, determinism, distributed slices."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from reidcli.data.sampler import PKSampler

# 12 identities: sizes 1..12 images; plus two unlabelled items that must never be drawn.
PIDS = [pid for pid in range(12) for _ in range(pid + 1)] + [-1, -1]


def _pids_of(batch: list[int]) -> list[int]:
    return [PIDS[i] for i in batch]


def test_batches_are_p_distinct_ids_with_k_images_each() -> None:
    sampler = PKSampler(PIDS, p=4, k=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    for batch in batches:
        counts = Counter(_pids_of(batch))
        assert len(batch) == 12 and len(counts) == 4 and set(counts.values()) == {3}
        assert -1 not in counts
        # Images of one id are consecutive: a triplet loss sees contiguous groups.
        assert _pids_of(batch) == [p for p in _pids_of(batch)[::3] for _ in range(3)]


def test_epoch_uses_each_chunk_once_and_small_ids_use_replacement() -> None:
    sampler = PKSampler(PIDS, p=2, k=4, seed=0)
    drawn = [i for b in sampler for i in b]
    # Id of size n gives max(1, n // 4) chunks: sizes 1..12 -> 3 + 4 + 8 + 3 = 18 chunks.
    chunks = {pid: max(1, (pid + 1) // 4) for pid in range(12)}
    assert sum(chunks.values()) == 18
    used = Counter(PIDS[i] for i in drawn)
    assert all(used[pid] % 4 == 0 and used[pid] // 4 <= chunks[pid] for pid in used)
    # The epoch stops only when fewer than P=2 ids have chunks left.
    left = {pid: chunks[pid] - used[pid] // 4 for pid in chunks}
    assert len([pid for pid, n in left.items() if n]) <= 1
    assert len(sampler) * 2 == 18 - sum(left.values())
    # An id with >= K images never repeats an image within an epoch; id 0 (one image)
    # fills its chunk by drawing that image K times.
    for pid in range(3, 12):
        ids = [i for i in drawn if PIDS[i] == pid]
        assert len(ids) == len(set(ids))
    if used[0]:
        assert [i for i in drawn if PIDS[i] == 0] == [0] * 4


def test_deterministic_per_seed_and_epoch() -> None:
    a, b = PKSampler(PIDS, p=4, k=2, seed=7), PKSampler(PIDS, p=4, k=2, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    assert list(PKSampler(PIDS, p=4, k=2, seed=8)) != first


def test_distributed_slices_concatenate_to_the_global_batch() -> None:
    single = PKSampler(PIDS, p=4, k=2, seed=3)
    single.set_epoch(2)
    ranks = [PKSampler(PIDS, p=4, k=2, seed=3, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(2)
    per_rank = [list(r) for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(single)
    for b, batch in enumerate(single):
        assert per_rank[0][b] + per_rank[1][b] == batch
        assert len(per_rank[0][b]) == 4


def test_usable_as_a_batch_sampler() -> None:
    data = TensorDataset(torch.arange(len(PIDS)), torch.tensor(PIDS))
    loader = DataLoader(data, batch_sampler=PKSampler(PIDS, p=3, k=2, seed=0))
    batches = list(loader)
    assert len(batches) == len(loader)
    index, pid = batches[0]
    assert index.shape == (6,) and len(set(pid.tolist())) == 3


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least P=16"):
        PKSampler(PIDS, p=16, k=4)
    with pytest.raises(ValueError, match="does not split evenly"):
        PKSampler(PIDS, p=3, k=1, world_size=2)
    with pytest.raises(ValueError, match="bad rank"):
        PKSampler(PIDS, p=2, k=2, rank=2, world_size=2)
