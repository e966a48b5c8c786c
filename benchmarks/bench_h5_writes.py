"""HDF5 bank appends with and without HDF5's chunk cache (reidcli writes without it).

    python benchmarks/bench_h5_writes.py [--rows-per-batch 128] [--batches 400] [--dim 768]

Appends batches of float32 features, labels and paths through `BankWriter` (as `reid
extract` does), checkpointing every 50 batches, alternating the two settings three times.
Without the cache a failed write (full disk) raises where it happens instead of inside a
destructor (see docs/reliability.md); this measures what that costs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from machine import cpu_name

import reidcli.retrieval.bank as bank
from reidcli.utils.io import open_h5_for_writing


def run(path: Path, cache: bool, batches: int, rows: int, dim: int) -> float:
    bank.open_h5_for_writing = (lambda p, m="w": h5py.File(p, m)) if cache \
        else open_h5_for_writing
    feats = np.random.default_rng(0).random((rows, dim), dtype=np.float32)
    start = time.perf_counter()
    with bank.BankWriter(path) as writer:
        for i in range(batches):
            writer.append("gallery", feats, np.zeros(rows), np.zeros(rows),
                          [f"some/dir/img{i}_{j}.jpg" for j in range(rows)])
            if i % 50 == 49:
                writer.checkpoint()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows-per-batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--dim", type=int, default=768)
    a = ap.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"{a.batches} x {a.rows_per_batch} rows of {a.dim} float32")
    with tempfile.TemporaryDirectory() as tmp:
        for cache in (True, False) * 3:
            seconds = run(Path(tmp) / "bank.h5", cache, a.batches, a.rows_per_batch, a.dim)
            print(f"{'chunk cache' if cache else 'no chunk cache':>15}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
