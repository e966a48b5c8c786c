"""Retrieval benchmarks: evaluation and exact re-ranking at Market-1501 and MSMT17 sizes.

Run:  python benchmarks/bench_retrieval.py run [--work DIR] [--sizes market,msmt,n5000]
Each measurement is a separate process under `/usr/bin/time -v` (so peak RSS belongs to that
measurement alone); the driver prints a markdown section for docs/benchmarks.md.
Single steps (what the driver runs):
  gen SIZE BANK | ours-eval BANK | classic-eval BANK | ours-rerank BANK [--save NPY]
  | classic-rerank BANK [--save NPY]
Every step prints one JSON line with its metrics and `compute_s` (time after imports and
bank loading).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from reidcli.retrieval.bank import read_bank, write_bank
from reidcli.retrieval.evaluate import EvalOptions, evaluate_features
from reidcli.retrieval.pipeline import Retrieval
from reidcli.retrieval.rerank import RerankParams, rerank
from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from classic_retrieval import classic_evaluate, classic_rerank, dense_distances  # noqa: E402

# Synthetic clustered features, D = 256, with each dataset's test-set shape: Market-1501
# (750 ids, 6 cameras, distractors and junk in the gallery), MSMT17 (3,060 ids, 15 cameras)
# and a 5,000-item problem small enough for the dense re-ranking.
SIZES = {
    "market": SyntheticSpec(3368, 15913, 750, num_cams=6, distractor_frac=0.175,
                            junk_frac=0.24, noise=1.7, seed=1),
    "msmt": SyntheticSpec(11659, 82161, 3060, num_cams=15, distractor_frac=0.0,
                          junk_frac=0.0, noise=1.7, seed=2),
    "n5000": SyntheticSpec(1000, 4000, 250, num_cams=6, distractor_frac=0.1, junk_frac=0.1,
                           noise=1.7, seed=3),
}


def _load(bank: str):
    b = read_bank(bank, lazy=False)
    return b.query, b.gallery


def _emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def step_gen(size: str, bank: str) -> None:
    write_bank(bank, synthetic_splits(SIZES[size]), attrs={"dataset": f"synthetic-{size}"})


def step_ours_eval(bank: str, rerank_on: bool) -> None:
    q, g = _load(bank)
    t = time.perf_counter()
    r = evaluate_features(q.feats, g.feats, q.pids, q.camids, g.pids, g.camids,
                          Retrieval(rerank=RerankParams() if rerank_on else None),
                          options=EvalOptions())
    _emit(compute_s=time.perf_counter() - t, mAP=r.mAP, mINP=r.mINP, cmc=r.cmc,
          num_valid_queries=r.num_valid_queries)


def step_classic_eval(bank: str) -> None:
    q, g = _load(bank)
    t = time.perf_counter()
    dist = dense_distances(q.feats, g.feats)
    r = classic_evaluate(dist, q.pids, g.pids, q.camids, g.camids)
    _emit(compute_s=time.perf_counter() - t, **r)


def step_rerank_matrix(bank: str, save: str | None, classic: bool) -> None:
    from reidcli.retrieval.distances import prepare_features

    q, g = _load(bank)
    t = time.perf_counter()
    if classic:
        final = classic_rerank(q.feats, g.feats)
    else:
        final = rerank(prepare_features(q.feats, "cosine"),
                       prepare_features(g.feats, "cosine"), RerankParams()).numpy()
    elapsed = time.perf_counter() - t
    r = classic_evaluate(final, q.pids, g.pids, q.camids, g.camids)
    if save:
        np.save(save, final)
    _emit(compute_s=elapsed, **r)


# --------------------------------------------------------------------------- driver

def _measure(args: list[str]) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, str(Path(__file__).resolve()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr)
    parts = [float(x) for x in wall.group(1).split(":")] if wall else [float("nan")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)",
                                           proc.stderr))
    out.update(rss_mb=int(rss.group(1)) / 1024 if rss else float("nan"), wall_s=seconds,
               cpu_s=cpu, command=f"python benchmarks/bench_retrieval.py {' '.join(args)}")
    return out


def _row(name: str, m: dict, target: str) -> str:
    return (f"| {name} | `{m['command']}` | {m['wall_s']:.1f} | {m['cpu_s']:.1f} "
            f"| {m.get('compute_s', 0):.1f} | {m['rss_mb']:.0f} | {100 * m.get('mAP', 0):.2f} "
            f"| {target} |")


def _same(a: dict, b: dict) -> str:
    keys = ("mAP", "mINP")
    diff = max(abs(a[k] - b[k]) for k in keys)
    diff = max(diff, max(abs(x - y) for x, y in zip(a["cmc"], b["cmc"], strict=False)))
    return "identical" if diff == 0 else f"max difference {diff:.2e}"


def run(work: Path, sizes: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    start_load = os.getloadavg()
    banks = {s: work / f"{s}.h5" for s in sizes}
    for s, path in banks.items():
        if not path.exists():
            _measure(["gen", s, str(path)])
    rows, notes = [], []
    if "market" in sizes:
        ours = _measure(["ours-eval", str(banks["market"])])
        classic = _measure(["classic-eval", str(banks["market"])])
        rows += [_row("evaluate, Market size (3,368 x 15,913)", ours, "-"),
                 _row("classic full-argsort loop, Market size", classic, "-")]
        notes.append(f"Market evaluation: ours vs classic speed ratio "
                     f"{classic['compute_s'] / ours['compute_s']:.1f}x compute, "
                     f"{classic['wall_s'] / ours['wall_s']:.1f}x wall (target >= 10x); "
                     f"metrics {_same(ours, classic)}.")
        rr = _measure(["ours-eval", str(banks["market"]), "--rerank"])
        rows.append(_row("re-rank + evaluate, Market size", rr, "<= 10 s, <= 1 GB"))
    if "msmt" in sizes:
        ev = _measure(["ours-eval", str(banks["msmt"])])
        rows.append(_row("evaluate, MSMT17 size (11,659 x 82,161)", ev, "<= 30 s, <= 2 GB"))
        rr = _measure(["ours-eval", str(banks["msmt"]), "--rerank"])
        rows.append(_row("re-rank + evaluate, MSMT17 size", rr, "<= 3 min, <= 5 GB"))
    if "n5000" in sizes:
        a, b = work / "ours5000.npy", work / "classic5000.npy"
        ours = _measure(["ours-rerank", str(banks["n5000"]), "--save", str(a)])
        classic = _measure(["classic-rerank", str(banks["n5000"]), "--save", str(b)])
        rows += [_row("exact re-ranking, N = 5,000 (1,000 x 4,000)", ours, "-"),
                 _row("classic dense re-ranking, N = 5,000", classic, "-")]
        diff = float(np.abs(np.load(a) - np.load(b)).max())
        notes.append(f"Re-ranking at N = 5,000: ours vs classic speed ratio "
                     f"{classic['compute_s'] / ours['compute_s']:.1f}x compute, "
                     f"{classic['wall_s'] / ours['wall_s']:.1f}x wall (target >= 10x); "
                     f"max |difference| of final distances {diff:.1e} (target <= 1e-5); "
                     f"metrics {_same(ours, classic)}.")
    print(f"- Load average at the start: {start_load[0]:.1f}/{start_load[1]:.1f}/"
          f"{start_load[2]:.1f}.")
    load = os.getloadavg()
    print("| run | command | wall s | CPU s | compute s | peak RSS MB | mAP % | target |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print()
    for n in notes:
        print(f"- {n}")
    print(f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; load average at the end "
          f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run")
    r.add_argument("--work", type=Path, default=Path("/tmp/reid-bench-retrieval"))
    r.add_argument("--sizes", default="market,msmt,n5000")
    g = sub.add_parser("gen")
    g.add_argument("size", choices=sorted(SIZES))
    g.add_argument("bank")
    e = sub.add_parser("ours-eval")
    e.add_argument("bank")
    e.add_argument("--rerank", action="store_true")
    sub.add_parser("classic-eval").add_argument("bank")
    for name in ("ours-rerank", "classic-rerank"):
        s = sub.add_parser(name)
        s.add_argument("bank")
        s.add_argument("--save")
    a = p.parse_args()
    if a.step == "run":
        run(a.work, a.sizes.split(","))
    elif a.step == "gen":
        step_gen(a.size, a.bank)
    elif a.step == "ours-eval":
        step_ours_eval(a.bank, a.rerank)
    elif a.step == "classic-eval":
        step_classic_eval(a.bank)
    else:
        step_rerank_matrix(a.bank, a.save, classic=a.step == "classic-rerank")


if __name__ == "__main__":
    main()
