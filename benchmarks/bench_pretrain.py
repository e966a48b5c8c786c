"""Pre-training step throughput (images/s per crop set) of dino / dino-mim / pass.

Times the training step only (teacher + student forward, backward, clipping, AdamW, EMA) on
random crops, so the number is the model's cost, not the loader's. Usage:

    python benchmarks/bench_pretrain.py --backbone vit-s --batch 16 --steps 5 [--device cuda]
    python benchmarks/bench_pretrain.py --backbone vit-small-demo --size 128x64 \
        --local-size 64x32 --out-dim 4096 --threads 2     # the small CPU evidence setting

Each line also reports the peak RSS of this process (CPU) or the peak CUDA memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.ema import ema_update
from reidcli.ssl.engine import build_networks, clip_per_parameter, param_groups
from reidcli.ssl.masking import MaskSpec, view_masks
from reidcli.ssl.network import token_grid
from reidcli.ssl.objective import Objective


def _size(text: str) -> tuple[int, int]:
    h, w = text.lower().split("x")
    return int(h), int(w)


def bench(method: str, backbone: str, batch: int, steps: int, device: str, amp: bool,
          global_size: tuple[int, int] = (256, 128), local_size: tuple[int, int] = (128, 64),
          out_dim: int | None = None, head_hidden: int = 2048, local_crops: int = 8) -> dict:
    cfg = PretrainConfig(data="x", output="x", method=method, backbone=backbone,
                         global_size=global_size, local_size=local_size, out_dim=out_dim,
                         head_hidden=head_hidden, local_crops=local_crops).resolved()
    student, teacher = build_networks(cfg)
    student.to(device)
    teacher.to(device)
    objective = Objective(method, cfg.out_dim, parts=cfg.parts).to(device)
    opt = torch.optim.AdamW(param_groups(student), lr=1e-4)
    n_local = cfg.num_local_views
    views = [torch.randn(batch, 3, *cfg.global_size, device=device) for _ in range(2)]
    views += [torch.randn(batch, 3, *cfg.local_size, device=device) for _ in range(n_local)]
    masks: list[torch.Tensor] = []
    if method == "dino-mim":
        grid = token_grid(student.backbone, cfg.global_size)
        rng = np.random.default_rng(0)
        per_sample = [view_masks(grid, 2, rng, MaskSpec()) for _ in range(batch)]
        masks = [torch.from_numpy(np.stack([m[v] for m in per_sample])).to(device)
                 for v in range(2)]
    dtype = torch.bfloat16 if device == "cpu" else torch.float16
    scaler = torch.amp.GradScaler(device, enabled=amp and device == "cuda")

    def step() -> None:
        with torch.autocast(device, dtype=dtype, enabled=amp):
            with torch.no_grad():
                t = teacher(views[:2])
            s = student(views, masks)
        loss, _, _ = objective(s, t, masks, 0.04, 0.04)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        clip_per_parameter(student, 3.0)
        scaler.step(opt)
        scaler.update()
        ema_update(teacher, student, 0.996)

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"method": method, "backbone": backbone, "batch": batch, "device": device, "amp": amp,
           "out_dim": cfg.out_dim, "head_hidden": head_hidden, "threads": torch.get_num_threads(),
           "crops": f"2x{cfg.global_size[0]}x{cfg.global_size[1]}+"
                    f"{n_local}x{cfg.local_size[0]}x{cfg.local_size[1]}",
           "images_per_s": round(batch * steps / dt, 2)}
    if device == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:
        # ru_maxrss is KiB on Linux; a process-wide high-water mark, so with several methods
        # in one run it is the largest so far, not this method's own.
        out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="dino,dino-mim,pass")
    p.add_argument("--backbone", default="vit-s")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--size", type=_size, default=(256, 128), help="global crops HxW")
    p.add_argument("--local-size", type=_size, default=(128, 64), help="local crops HxW")
    p.add_argument("--out-dim", type=int, default=None, help="head prototypes K")
    p.add_argument("--head-hidden", type=int, default=2048, help="DINO head width")
    p.add_argument("--local-crops", type=int, default=8, help="dino / dino-mim local crops")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for method in args.methods.split(","):
        print(json.dumps(bench(method, args.backbone, args.batch, args.steps, args.device,
                               args.amp, args.size, args.local_size, args.out_dim,
                               args.head_hidden, args.local_crops)), flush=True)


if __name__ == "__main__":
    main()
