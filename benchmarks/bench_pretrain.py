"""Pre-training step throughput (images/s per crop set) of dino / dino-mim / pass.

Times the training step only (teacher + student forward, backward, clipping, AdamW, EMA) on
random crops, so the number is the model's cost, not the loader's. Usage:

    python benchmarks/bench_pretrain.py --backbone vit-s --batch 16 --steps 5 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.ema import ema_update
from reidcli.ssl.engine import build_networks, clip_per_parameter, param_groups
from reidcli.ssl.masking import MaskSpec, view_masks
from reidcli.ssl.network import token_grid
from reidcli.ssl.objective import Objective


def bench(method: str, backbone: str, batch: int, steps: int, device: str, amp: bool) -> dict:
    cfg = PretrainConfig(data="x", output="x", method=method, backbone=backbone).resolved()
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
           "crops": f"2x{cfg.global_size[0]}x{cfg.global_size[1]}+"
                    f"{n_local}x{cfg.local_size[0]}x{cfg.local_size[1]}",
           "images_per_s": round(batch * steps / dt, 2)}
    if device == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="dino,dino-mim,pass")
    p.add_argument("--backbone", default="vit-s")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    args = p.parse_args()
    for method in args.methods.split(","):
        print(json.dumps(bench(method, args.backbone, args.batch, args.steps, args.device,
                               args.amp)), flush=True)


if __name__ == "__main__":
    main()
