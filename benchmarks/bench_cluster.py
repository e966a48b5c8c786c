"""Clustering benchmark of `reid finetune --unsupervised`: Jaccard graph + DBSCAN at scale.

Run:  python benchmarks/bench_cluster.py run [--sizes 32621,100000]
      python benchmarks/bench_cluster.py run --sizes 2000        (a quick check)
Each size is measured in a child process of its own (`step N`), so its peak RSS is that of
the measurement alone. The child draws synthetic ReID features (`reidcli.retrieval.synthetic`,
about 31 images per identity as in MSMT17's train split, 32,621 images of 1,041 identities;
noise 2.5, so that a few images end as outliers, as on real data), clusters them as one
training epoch does (k1 30, k2 6, eps 0.7, min_samples 4) and prints one JSON line. The
driver prints a markdown table for docs/benchmarks.md, next to what the reference's dense
Jaccard code needs: it holds V and its query-expanded copy, two N x N float32 arrays, at
once (then the N x N distance matrix), so at least 8 N^2 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from machine import cpu_name

IMAGES_PER_ID = 31  # MSMT17 train: 32,621 images / 1,041 identities


def step(n: int, dim: int, noise: float) -> None:
    t0 = time.perf_counter()
    import torch

    from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits
    from reidcli.unsupervised import ClusterParams, label_agreement, pseudo_labels

    torch.set_num_threads(os.cpu_count() or 1)
    spec = SyntheticSpec(num_query=0, num_gallery=n, num_ids=max(1, n // IMAGES_PER_ID),
                         dim=dim, noise=noise, distractor_frac=0.0, junk_frac=0.0,
                         seed=0)
    split = synthetic_splits(spec)["gallery"]
    feats = np.asarray(split.feats)
    ready = time.perf_counter()
    result = pseudo_labels(feats, ClusterParams(eps=0.7, min_samples=4, k1=30, k2=6))
    agreement = label_agreement(result.labels, split.pids - 1)
    print(json.dumps({
        "n": n, "dim": dim, "setup_s": round(ready - t0, 1),
        "cluster_s": round(result.seconds, 1), "clusters": result.num_clusters,
        "true_ids": spec.num_ids, "outlier_share": round(result.outlier_share, 4),
        "graph_edges_per_row": round(result.graph_edges / n, 1), **agreement,
    }), flush=True)


def measure(n: int, dim: int, noise: float) -> dict:
    """Run `step n` as a child; add its wall time and peak RSS."""
    cmd = [sys.executable, __file__, "step", str(n), "--dim", str(dim), "--noise", str(noise)]
    print("$ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"step {n} failed")
    row = json.loads(out.strip().splitlines()[-1])
    row.update(wall_s=round(time.perf_counter() - t0, 1),
               peak_rss_mb=round(usage.ru_maxrss / 1024))  # Linux: KiB
    return row


def run(sizes: list[int], dim: int, noise: float) -> None:
    load = os.getloadavg()
    print(f"- Load average at the start: {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.")
    print("| images | clusters (true ids) | outliers | ARI | Jaccard + DBSCAN s | wall s | "
          "peak RSS MB | dense reference needs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        r = measure(n, dim, noise)
        dense_gb = 8 * n * n / 1e9
        print(f"| {n:,} | {r['clusters']:,} ({r['true_ids']:,}) | {r['outlier_share']:.1%} | "
              f"{r.get('purity_ari', float('nan')):.3f} | {r['cluster_s']} | {r['wall_s']} | "
              f"{r['peak_rss_mb']:,} | >= {dense_gb:.3g} GB |", flush=True)
    load = os.getloadavg()
    print(f"- Features: synthetic, {dim}-d, noise {noise}, {IMAGES_PER_ID} images per identity; "
          "k1 30, k2 6, "
          "eps 0.7, min_samples 4. Wall time includes imports and drawing the features.")
    print(f"- {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sizes", default="32621,100000")
    s = sub.add_parser("step")
    s.add_argument("n", type=int)
    for parser in (r, s):
        parser.add_argument("--dim", type=int, default=384)
        parser.add_argument("--noise", type=float, default=2.5)
    a = p.parse_args()
    if a.what == "run":
        run([int(x) for x in a.sizes.split(",")], a.dim, a.noise)
    else:
        step(a.n, a.dim, a.noise)


if __name__ == "__main__":
    main()
