"""How target-like is a CFS selection? Precision of a list against `synth unlabeled`'s manifest.

`reid synth unlabeled --target-like P` records each image's domain in manifest.csv; a
selection that prefers target-like images keeps more than the share P of them, which is
what a random subset keeps on average. One list:

    python benchmarks/cfs_evidence.py --list cfs.txt --manifest lup/manifest.csv [--seeds 5]

prints the kept count, the precision (share of kept images that are target-like), the
recall, the share of kept crops without a person, the same for random subsets of the same
size (mean and spread over seeds), and the precision at a few depths of the ranking.

A sweep over synthetic worlds (the robustness of the defaults):

    python benchmarks/cfs_evidence.py --sweep --worlds 0,1,2,3,4 --cams 3,6 --out DIR

makes, for every world seed and camera count, a synthetic Market (the target) and an
unlabelled source of the same world, runs `cfs-filter --keep 0.5` with the default target
proxy (and, with `--arms default,self-supervised,supervised-pad10`, other target proxies
on the same theta_s), and prints one row per run plus the mean and the worst case over the worlds,
with the stage's own self-check next to each.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidcli.data.parsers.luperson import read_list
from reidcli.data.synth import read_manifest
from reidcli.demo.plan import FULL

RANDOM_SUBSETS = 20


def evaluate(list_path: Path, manifest_root: Path, seeds: int) -> dict:
    rows = {row.path: row for row in read_manifest(manifest_root)}
    ranked = [path for _, path in read_list(list_path)]
    unknown = [p for p in ranked if p not in rows]
    if unknown:
        raise SystemExit(f"{len(unknown)} listed images are not in the manifest, e.g. "
                         f"{unknown[0]}")
    is_target = np.array([rows[p].domain == "target" for p in ranked], dtype=bool)
    no_person = np.array([rows[p].person == 0 for p in ranked], dtype=bool)
    total = len(rows)
    pool_target = np.array([r.domain == "target" for r in rows.values()], dtype=bool)
    pool_empty = np.array([r.person == 0 for r in rows.values()], dtype=bool)
    picks = [np.random.default_rng(s).choice(total, len(ranked), replace=False)
             for s in range(seeds)]
    random = [float(pool_target[p].mean()) for p in picks]
    depths = {f"top {f:.0%}": float(is_target[: max(1, round(f * total))].mean())
              for f in (0.1, 0.2, 0.3) if round(f * total) <= len(ranked)}
    return {
        "list": str(list_path),
        "kept": len(ranked),
        "source_images": total,
        "target_like_share": float(pool_target.mean()),
        "precision": float(is_target.mean()),
        "recall": float(is_target.sum() / pool_target.sum()),
        "random_precision_mean": float(np.mean(random)),
        "random_precision_std": float(np.std(random)),
        "no_person_share": float(no_person.mean()),
        "pool_no_person_share": float(pool_empty.mean()),
        "random_no_person_mean": float(np.mean([pool_empty[p].mean() for p in picks])),
        "precision_at": depths,
    }


@dataclass
class SweepSettings:
    """One synthetic world per (seed, cameras), sized as the full demo, with its proxies."""

    images: int = FULL.unlabeled_images
    target_like: float = FULL.target_like
    ids: int = FULL.ids
    per_cam: int = FULL.per_cam
    size: tuple[int, int] = FULL.size
    proxy_epochs: int = FULL.proxy_epochs
    proxy_sample: int = FULL.proxy_sample
    workers: int = 1


ARMS: dict[str, tuple[bool | None, dict[str, Any]]] = {
    # name: (ProxySettings.target_supervised, finetune_overrides)
    "default": (None, {}),
    "self-supervised": (False, {}),
    "supervised-pad10": (True, {"padding": 10}),  # before crop padding scaled with the size
}


def _proxy_settings(s: SweepSettings, arm: str) -> Any:
    from reidcli.selection.proxies import ProxySettings

    supervised, finetune = ARMS[arm]
    # The demo's proxies: tiny ViT, its pre-training recipe; fine-tuning keeps its defaults.
    return ProxySettings(
        epochs=s.proxy_epochs, sample=s.proxy_sample, backbone=FULL.backbone, size=s.size,
        batch_size=FULL.pretrain_batch, target_supervised=supervised, workers=s.workers,
        device="cpu", progress=False, pretrain_overrides=FULL.pretrain_recipe(),
        finetune_overrides=finetune,
    )


def sweep_one(world: int, cams: int, arms: list[str], s: SweepSettings, out: Path
              ) -> list[dict[str, Any]]:
    from reidcli.data.synth import MarketConfig, UnlabeledConfig, write_market, write_unlabeled
    from reidcli.selection import CfsOptions, cfs_filter

    root = out / f"w{world}_c{cams}"
    market, lup = root / "market", root / "lup"
    if not market.is_dir():
        write_market(market, MarketConfig(ids=s.ids, cams=cams, seed=world, size=s.size,
                                          per_cam=s.per_cam))
    if not lup.is_dir():
        write_unlabeled(lup, UnlabeledConfig(images=s.images, target_like=s.target_like,
                                             target_cams=cams, seed=world, size=s.size))
    rows = []
    source_model = None
    for arm in arms:
        started = time.perf_counter()
        result = cfs_filter(CfsOptions(
            source=f"luperson:{lup}", target=f"market1501:{market}", keep=0.5,
            output=root / f"cfs_{arm}.txt", source_model=source_model,
            proxy=_proxy_settings(s, arm), workers=s.workers, device="cpu",
            progress=False,
        ))
        assert result is not None and result.check is not None
        source_model = result.source_model  # later arms adapt the same theta_s
        row = {"world": world, "cams": cams, "arm": arm,
               "seconds": round(time.perf_counter() - started, 1),
               **evaluate(result.list_path, lup, RANDOM_SUBSETS),
               "check": asdict(result.check)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| world | cams | target proxy | precision (kept half) | random half "
             "| no-person kept | no-person pool | self-check: median percentile | flagged |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        c = r["check"]
        lines.append(
            f"| {r['world']} | {r['cams']} | {r['arm']} | {r['precision']:.3f} | "
            f"{r['random_precision_mean']:.3f} | {r['no_person_share']:.3f} | "
            f"{r['pool_no_person_share']:.3f} | {c['median_percentile']:.0f} | "
            f"{'inverted' if c['inverted'] else 'no'} |")
    summary = ["", "| target proxy | runs | precision: mean | worst run (precision vs random "
               "half) | no-person kept: mean / max (pool) | below a random half | flagged |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        p = np.array([r["precision"] for r in mine])
        gain = p - np.array([r["random_precision_mean"] for r in mine])
        empty = np.array([r["no_person_share"] for r in mine])
        w = mine[int(np.argmin(gain))]
        summary.append(
            f"| {arm} | {len(mine)} | {p.mean():.3f} (random {p.mean() - gain.mean():.3f}) | "
            f"{w['precision']:.3f} vs {w['random_precision_mean']:.3f} (world {w['world']}, "
            f"{w['cams']} cams) | {empty.mean():.3f} / {empty.max():.3f} "
            f"({mine[0]['pool_no_person_share']:.3f}) | {int((gain < 0).sum())} | "
            f"{sum(r['check']['inverted'] for r in mine)} |")
    return "\n".join(lines + summary)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", type=Path, help="cfs-filter output list")
    parser.add_argument("--manifest", type=Path,
                        help="manifest.csv of the `synth unlabeled` source (or its folder)")
    parser.add_argument("--seeds", type=int, default=RANDOM_SUBSETS,
                        help="random subsets to compare")
    parser.add_argument("--sweep", action="store_true", help="run the sweep over worlds")
    parser.add_argument("--worlds", type=_ints, default=[0, 1, 2, 3, 4],
                        help="synthetic world seeds, comma-separated")
    parser.add_argument("--cams", type=_ints, default=[3, 6], help="target camera counts")
    parser.add_argument("--arms", default="default",
                        help="target proxies, comma-separated: " + ", ".join(ARMS))
    parser.add_argument("--images", type=int, default=SweepSettings.images)
    parser.add_argument("--proxy-epochs", type=int, default=SweepSettings.proxy_epochs)
    parser.add_argument("--out", type=Path, default=Path("cfs_sweep"))
    args = parser.parse_args()
    if args.sweep:
        settings = SweepSettings(images=args.images, proxy_epochs=args.proxy_epochs)
        rows = [row for world in args.worlds for cams in args.cams
                for row in sweep_one(world, cams, args.arms.split(","), settings, args.out)]
        table = _table(rows)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n")
        (args.out / "sweep.md").write_text(table + "\n")
        print(table)
        return
    if args.list is None or args.manifest is None:
        parser.error("give --list and --manifest, or --sweep")
    root = args.manifest.parent if args.manifest.is_file() else args.manifest
    result = evaluate(args.list, root, args.seeds)
    print(json.dumps(result, indent=2))
    at = ", ".join(f"{k} {v:.3f}" for k, v in result["precision_at"].items())
    print(f"| {result['list']} | {result['kept']} of {result['source_images']} | "
          f"{result['precision']:.3f} | {result['recall']:.3f} | "
          f"{result['random_precision_mean']:.3f} ± {result['random_precision_std']:.3f} | "
          f"{result['no_person_share']:.3f} | {at} |")


if __name__ == "__main__":
    main()
