"""Synthetic data generation speed: images/s on one process, JPEG files written to disk.

Run: python benchmarks/bench_synth.py [--images N] [--size HxW] [--workers W]
Prints one markdown table row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from machine import cpu_name

from reidcli.data.synth import MarketConfig, World, plan_market
from reidcli.data.synth.output import write_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", default="128x64")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--occlusion", type=float, default=0.1)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    per_cam, cams = 4, 6
    # ~4 cameras per id on average: enough ids for the requested number of images.
    ids = max(4, min(9999, args.images // (per_cam * 4) + 1))
    cfg = MarketConfig(ids=ids, cams=cams, seed=0, size=(h, w), per_cam=per_cam,
                       occlusion=args.occlusion)
    world = World(cfg.seed)
    jobs = plan_market(cfg, world)[: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up: build the per-camera scenes so the timing covers steady-state images.
        write_jobs(jobs[: 4 * cams], world, Path(tmp) / "warm", 1)
        start, cpu_start = time.perf_counter(), time.process_time()
        write_jobs(jobs, world, Path(tmp) / "run", args.workers)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    # CPU time of this process is the honest single-core figure on a shared machine; with
    # workers it excludes the children, so only the wall-clock rate is reported then.
    cpu_rate = f"{len(jobs) / cpu_seconds:.0f}" if args.workers == 1 else "-"
    print(f"| synth market {h}x{w}, occlusion {args.occlusion} | {len(jobs)} images | "
          f"{args.workers} process(es) | {len(jobs) / seconds:.0f} images/s wall | "
          f"{cpu_rate} images/CPU-s | {cpu_name()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()} |")


if __name__ == "__main__":
    main()
