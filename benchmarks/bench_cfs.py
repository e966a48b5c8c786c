"""CFS scoring throughput and memory, and the projected time for LUPerson's 4.2M images.

Scores freshly written JPEGs (random sizes around LUPerson's typical crop) with two
randomly initialised proxies through the real streaming path (`score_images`: decode,
resize, both forwards, cosine, HDF5 writes), and separately times the two forwards alone
on ready tensors, so the gap shows what the loader costs. Memory: peak RSS of this process
and of the loader workers (CPU) or peak allocated GPU memory, plus the size of the path
tables for 4.2M images extrapolated from `--records` synthetic paths. Usage:

    python benchmarks/bench_cfs.py --backbone vit-s --images 256 --batch 64 --workers 2
    python benchmarks/bench_cfs.py --device cuda --amp fp16 --images 4096 --batch 256
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reidcli.data.records import ImageRecord
from reidcli.models import ModelConfig, build_model, save_model
from reidcli.runtime.device import amp_dtype
from reidcli.selection.pipeline import load_source
from reidcli.selection.score import ProxyPair, ScoreOptions, SourceImages, score_images

LUPERSON = 4_180_243


def write_images(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        h = int(rng.integers(96, 320))
        w = max(32, int(h * rng.uniform(0.35, 0.6)))
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        path = root / f"part{i // 1000:02d}" / f"v{i // 50:05d}" / f"img_{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)


def write_proxy(path: Path, backbone: str, size: tuple[int, int], seed: int) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone=backbone, img_size=size, drop_path=0.0)
    save_model(path, build_model(cfg), cfg)
    return path


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    out = {"rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    if device.type == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def model_only(pair: ProxyPair, batch: int, steps: int) -> float:
    """Images/s of the two forwards + cosine on tensors already in memory."""
    views = [torch.randn(batch, 3, *key[0]) for key in pair.keys]
    pair.scores(views)  # warm-up
    if pair.device.type == "cuda":
        torch.cuda.synchronize(pair.device)
    start = time.perf_counter()
    for _ in range(steps):
        pair.scores(views)
    if pair.device.type == "cuda":
        torch.cuda.synchronize(pair.device)
    return batch * steps / (time.perf_counter() - start)


def path_table_bytes(records: int) -> float:
    """Bytes of the two path tables per image, measured on `records` LUPerson-like paths."""
    root = Path("/data/LUPerson/images")
    fake = [ImageRecord(str(root / f"part{i % 100:02d}/v{i // 24:07d}/v{i // 24:07d}_"
                        f"{i % 1000:06d}_{i % 24:02d}.jpg"), -1, 0) for i in range(records)]
    images = SourceImages.from_records("bench", root, fake)
    return (images.paths.nbytes + images.relative.nbytes) / records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="vit-s")
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off")
    parser.add_argument("--steps", type=int, default=3, help="batches for the model-only rate")
    parser.add_argument("--records", type=int, default=200_000,
                        help="synthetic paths for the path-table memory estimate")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root / "src", args.images)
        s = write_proxy(root / "s", args.backbone, (h, w), 0)
        t = write_proxy(root / "t", args.backbone, (h, w), 1)
        images = load_source(f"luperson:{root / 'src'}")
        opts = ScoreOptions(source_model=s, target_model=t, output=root / "scores.h5",
                            batch_size=args.batch, workers=args.workers, amp=args.amp,
                            device=args.device, progress=False)
        result = score_images(images, opts)
        pair = ProxyPair(s, t, device, amp_dtype(args.amp, device))
        model_rate = model_only(pair, args.batch, args.steps)
    rate = result.images_per_second
    per_image = path_table_bytes(args.records)
    row = {
        "backbone": args.backbone,
        "size": args.size,
        "device": args.device,
        "amp": args.amp,
        "batch": args.batch,
        "workers": args.workers,
        "images": args.images,
        "images_per_s": rate,
        "model_only_images_per_s": model_rate,
        "projected_hours_4_2M": LUPERSON / rate / 3600,
        "path_tables_mb_4_2M": per_image * LUPERSON / 2**20,
        **peak_memory_mb(device),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, Python "
                   f"{platform.python_version()}",
    }
    print(json.dumps(row, indent=2))
    print(f"| {args.backbone} {args.size} | {args.device} amp {args.amp} | batch {args.batch}, "
          f"{args.workers} workers | {rate:.1f} img/s ({model_rate:.1f} model only) | "
          f"{row['projected_hours_4_2M']:.1f} h | {row['rss_main_mb']:.0f} MB main, "
          f"{row['rss_workers_mb']:.0f} MB largest worker"
          + (f", {row['gpu_peak_mb']:.0f} MB GPU" if "gpu_peak_mb" in row else "") + " |")


if __name__ == "__main__":
    main()
