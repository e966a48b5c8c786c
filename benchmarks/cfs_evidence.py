"""How target-like is a CFS selection? Precision of a list against `synth unlabeled`'s manifest.

`reid synth unlabeled --target-like P` records each image's domain in manifest.csv; a
selection that prefers target-like images keeps more than the share P of them, which is
what a random subset keeps on average. Usage:

    python benchmarks/cfs_evidence.py --list cfs.txt --manifest lup/manifest.csv [--seeds 5]

Prints the kept count, the precision (share of kept images that are target-like), the
recall, the precision of random subsets of the same size (mean and spread over seeds), and
the precision at a few depths of the ranking.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from reidcli.data.parsers.luperson import read_list
from reidcli.data.synth import read_manifest


def evaluate(list_path: Path, manifest_root: Path, seeds: int) -> dict:
    domains = {row.path: row.domain == "target" for row in read_manifest(manifest_root)}
    ranked = read_list(list_path)
    unknown = [p for p in ranked if p not in domains]
    if unknown:
        raise SystemExit(f"{len(unknown)} listed images are not in the manifest, e.g. "
                         f"{unknown[0]}")
    hits = np.array([domains[p] for p in ranked], dtype=bool)
    total, targets = len(domains), sum(domains.values())
    everything = np.array(list(domains.values()), dtype=bool)
    random = [float(np.random.default_rng(s).choice(everything, len(hits), replace=False).mean())
              for s in range(seeds)]
    depths = {f"top {f:.0%}": float(hits[: max(1, round(f * total))].mean())
              for f in (0.1, 0.2, 0.3) if round(f * total) <= len(hits)}
    return {
        "list": str(list_path),
        "kept": len(hits),
        "source_images": total,
        "target_like_share": targets / total,
        "precision": float(hits.mean()),
        "recall": float(hits.sum() / targets),
        "random_precision_mean": float(np.mean(random)),
        "random_precision_std": float(np.std(random)),
        "precision_at": depths,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", type=Path, required=True, help="cfs-filter output list")
    parser.add_argument("--manifest", type=Path, required=True,
                        help="manifest.csv of the `synth unlabeled` source (or its folder)")
    parser.add_argument("--seeds", type=int, default=20, help="random subsets to compare")
    args = parser.parse_args()
    root = args.manifest.parent if args.manifest.is_file() else args.manifest
    result = evaluate(args.list, root, args.seeds)
    print(json.dumps(result, indent=2))
    at = ", ".join(f"{k} {v:.3f}" for k, v in result["precision_at"].items())
    print(f"| {result['list']} | {result['kept']} of {result['source_images']} | "
          f"{result['precision']:.3f} | {result['recall']:.3f} | "
          f"{result['random_precision_mean']:.3f} ± {result['random_precision_std']:.3f} | "
          f"{at} |")


if __name__ == "__main__":
    main()
