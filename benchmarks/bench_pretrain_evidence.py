"""Does self-supervised pre-training help? Evidence on synthetic data, through the real CLI.

Runs, as subprocesses of `reid` (each command is printed so it can be copy-pasted):

1. `reid synth unlabeled` (LUPerson-like, part of it in the target's style) and
   `reid synth market` with the same seed, so both share cameras and clothing palette;
2. `reid pretrain --method M` for each method, with one fixed budget (epochs x images);
3. `reid finetune` from each pre-trained teacher and from random initialisation, all with
   one fixed fine-tuning budget, evaluated on the synthetic query/gallery split;

then prints (and writes as JSON) mAP / R1 per start and each pre-training's cost: images/s
(the engine's own per-epoch rate and images / wall-clock including start-up), CPU time and
the peak RSS of the largest process of the run (main process or a loader worker).

    .venv/bin/python benchmarks/bench_pretrain_evidence.py                 # defaults below
    .venv/bin/python benchmarks/bench_pretrain_evidence.py --ft-seeds 1234,1,2

Finished runs (those with a final model) are reused, so an interrupted benchmark can be
restarted with the same options; `--fresh` deletes the output folder first.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REID = str(Path(sys.executable).with_name("reid"))


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Run one CLI command, echoing it; returns wall, CPU seconds and peak RSS (GiB)."""
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"\n$ {shown} {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=os.environ | env, stdout=out,
                                stderr=subprocess.STDOUT)
        # wait4 gives this child's own rusage: RUSAGE_CHILDREN would mix all commands run
        # so far. Its ru_maxrss is the largest single process of the tree (main process or
        # a DataLoader worker that it waited for), not their sum.
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed with exit code {code}; see {log}")
    stats = {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
             "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}
    print(f"  -> {stats}", flush=True)
    return stats


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def finished(run_dir: Path) -> bool:
    return (run_dir / "model.safetensors").is_file() and (run_dir / "stats.json").is_file()


def cached(run_dir: Path, cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run `cmd` unless `run_dir` already holds a finished run of the same command."""
    stamp = run_dir / "stats.json"
    if finished(run_dir):
        saved = json.loads(stamp.read_text())
        if saved.get("cmd") == cmd:
            print(f"\n(reusing {run_dir.name}: {shlex.join(cmd)})", flush=True)
            return saved["stats"]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    stats = run(cmd, cwd, env, run_dir.with_suffix(".log"))
    stamp.write_text(json.dumps({"cmd": cmd, "stats": stats}))
    return stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/out/evidence")
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    p.add_argument("--seed", type=int, default=0, help="synthetic world seed (both datasets)")
    p.add_argument("--images", type=int, default=4000, help="unlabelled images")
    p.add_argument("--target-like", type=float, default=0.3)
    p.add_argument("--ids", type=int, default=100, help="identities of the Market-layout set")
    p.add_argument("--methods", default="dino,dino-mim,pass")
    p.add_argument("--backbone", default="vit-tiny-test")
    p.add_argument("--size", default="128x64", help="global crops and fine-tuning input")
    p.add_argument("--local-size", default="64x32")
    p.add_argument("--out-dim", type=int, default=4096, help="head prototypes K")
    p.add_argument("--head-hidden", type=int, default=512,
                   help="DINO head width (recipe-only setting, written to a small recipe)")
    p.add_argument("--local-crops", type=int, default=4, help="dino / dino-mim local crops")
    p.add_argument("--part-crops", type=int, default=2, help="pass: local crops per part")
    p.add_argument("--pt-epochs", type=int, default=2)
    p.add_argument("--pt-batch", type=int, default=64)
    p.add_argument("--pt-lr", type=float, default=2e-3, help="per 256 images")
    p.add_argument("--pt-warmup", type=int, default=1)
    p.add_argument("--momentum-teacher", type=float, default=0.99)
    p.add_argument("--ft-epochs", type=int, default=20)
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--ft-warmup", type=int, default=2)
    p.add_argument("--ft-seeds", default="1234", help="comma-separated fine-tuning seeds")
    p.add_argument("--parts", type=int, default=3, help="PASS part tokens")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS of every command; 0 leaves torch's default")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs side by side (pre-trainings, then fine-tunings); >1 makes "
                        "images/s a shared-machine figure, CPU-s per image stays comparable")
    args = p.parse_args()

    out: Path = args.out.resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"$ cd {out}    # every command below runs here", flush=True)
    # On a small shared machine, torch's default of one intra-op thread per core spends
    # most of its time in spinning OpenMP barriers (measured 6x slower at 2 threads than at
    # 1 under load); loader workers already use one thread each.
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.ft_seeds.split(",")]
    results: dict[str, Any] = {"options": {k: str(v) for k, v in vars(args).items()}}

    # 1. Data: one world seed for both, so the target-like images share cameras and palette.
    lup, market = out / "lup", out / "market"
    data_cmds = [
        (lup, [REID, "synth", "unlabeled", "lup", "--images", str(args.images),
               "--target-like", str(args.target_like), "--target-cams", "6",
               "--seed", str(args.seed), "--size", args.size, "--workers", str(args.workers)]),
        (market, [REID, "synth", "market", "market", "--ids", str(args.ids), "--cams", "6",
                  "--seed", str(args.seed), "--size", args.size,
                  "--workers", str(args.workers)]),
    ]
    for folder, cmd in data_cmds:
        stamp = out / f"{folder.name}.cmd.json"
        if folder.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == cmd:
            print(f"\n(reusing {folder.name}: {shlex.join(cmd)})", flush=True)
            continue
        if folder.exists():
            shutil.rmtree(folder)
        results[f"synth_{folder.name}"] = run(cmd, out, env, out / f"{folder.name}.log")
        stamp.write_text(json.dumps(cmd))

    # 2. Pre-training. The head width has no CLI option; a recipe carries it.
    recipe = out / "pretrain_small.toml"
    recipe.write_text(f"# written by benchmarks/bench_pretrain_evidence.py\n"
                      f"[model]\nhead_hidden = {args.head_hidden}\n")
    print(f"\n$ cat {recipe.name}\n{recipe.read_text()}", end="")
    pre: dict[str, Any] = {}
    pt_cmds: dict[str, list[str]] = {}
    for method in methods:
        run_dir = out / f"pt_{method}"
        cmd = [REID, "pretrain", "--recipe", recipe.name, "--method", method,
               "--data", "luperson:lup", "--backbone", args.backbone, "--size", args.size,
               "--local-size", args.local_size, "--out-dim", str(args.out_dim),
               "--epochs", str(args.pt_epochs), "--warmup-epochs", str(args.pt_warmup),
               "--batch-size", str(args.pt_batch), "--lr", str(args.pt_lr),
               "--momentum-teacher", str(args.momentum_teacher), "--workers", str(args.workers),
               "--device", args.device, "--seed", str(args.seed), "-o", run_dir.name]
        if method == "pass":
            cmd[-2:-2] = ["--parts", str(args.parts), "--part-crops", str(args.part_crops)]
        else:
            cmd[-2:-2] = ["--local-crops", str(args.local_crops)]
        pt_cmds[method] = cmd
    with ThreadPoolExecutor(args.jobs) as pool:
        pt_stats = dict(zip(pt_cmds, pool.map(
            lambda m: cached(out / f"pt_{m}", pt_cmds[m], out, env), pt_cmds), strict=True))
    for method, stats in pt_stats.items():
        run_dir = out / f"pt_{method}"
        epochs = metrics(run_dir)
        trained = sum(e["iteration"] for e in epochs[-1:]) * args.pt_batch
        pre[method] = stats | {
            "images_trained": trained,
            "images_per_s_engine": round(sum(e["images_per_s"] for e in epochs) / len(epochs), 2),
            "images_per_s_wall": round(trained / stats["wall_s"], 2),
            "cpu_ms_per_image": round(1000 * stats["cpu_s"] / trained, 1),
            "final_loss": round(epochs[-1]["loss"], 3),
            "teacher_entropy": round(epochs[-1]["teacher_entropy"], 3),
            "prototypes_used": round(epochs[-1]["teacher_prototypes_used"], 1),
        }
    results["pretrain"] = pre

    # 3. Fine-tuning: the same budget for every start. PASS starts keep their [PART]
    # tokens, so the random start is also run with them as the like-for-like baseline.
    starts: list[tuple[str, str | None, int]] = [("random", None, 0)]
    if "pass" in methods:
        starts.append((f"random+{args.parts}parts", None, args.parts))
    starts += [(m, f"pt_{m}", args.parts if m == "pass" else 0) for m in methods]
    fine: dict[str, list[dict[str, Any]]] = {}
    ft_cmds: list[tuple[str, int, list[str]]] = []
    for name, pretrained, parts in starts:
        for seed in seeds:
            run_dir = out / f"ft_{name}_s{seed}"
            cmd = [REID, "finetune", "--data", "market1501:market", "--backbone", args.backbone,
                   "--size", args.size, "--epochs", str(args.ft_epochs), "--optimizer",
                   "adamw", "--lr", str(args.ft_lr), "--warmup-epochs", str(args.ft_warmup),
                   "--workers", str(args.workers), "--device", args.device,
                   "--seed", str(seed), "-o", run_dir.name]
            if parts:
                cmd[-2:-2] = ["--part-tokens", str(parts)]
            if pretrained:
                cmd[-2:-2] = ["--pretrained", pretrained]
            ft_cmds.append((name, seed, cmd))
    with ThreadPoolExecutor(args.jobs) as pool:
        ft_stats = list(pool.map(
            lambda job: cached(out / f"ft_{job[0]}_s{job[1]}", job[2], out, env), ft_cmds))
    for (name, seed, _), stats in zip(ft_cmds, ft_stats, strict=True):
        last = metrics(out / f"ft_{name}_s{seed}")[-1]
        fine.setdefault(name, []).append(stats | {
            "seed": seed, "mAP": round(100 * last["mAP"], 2), "R1": round(100 * last["R1"], 2),
        })
    results["finetune"] = fine

    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {out / 'results.json'}\n")
    print("| start | fine-tune seed(s) | mAP % | R1 % |\n| --- | --- | --- | --- |")
    for name, rows in fine.items():
        print(f"| {name} | {', '.join(str(r['seed']) for r in rows)} | "
              f"{' / '.join(str(r['mAP']) for r in rows)} | "
              f"{' / '.join(str(r['R1']) for r in rows)} |")
    print("\n| method | images | wall s | images/s (engine) | images/s (wall) | CPU s "
          "| CPU ms/image | peak RSS GiB | teacher entropy | prototypes used |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for method, s in pre.items():
        print(f"| {method} | {s['images_trained']} | {s['wall_s']} | {s['images_per_s_engine']} "
              f"| {s['images_per_s_wall']} | {s['cpu_s']} | {s['cpu_ms_per_image']} "
              f"| {s['peak_rss_gib']} | {s['teacher_entropy']} | {s['prototypes_used']} |")


if __name__ == "__main__":
    main()
