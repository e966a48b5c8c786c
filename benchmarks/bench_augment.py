"""Multi-crop augmentation cost per image: Pillow blur (ours) vs torchvision's blur, side by side.

The loader, not the model, bounds small pre-training runs (docs/benchmarks.md), and blur runs
on every view (p 1.0 / 0.1 / 0.5). This times one DataLoader worker's work per image - the
whole `MultiCrop` chain on a decoded image - with `RandomGaussianBlur` and with the
`v2.GaussianBlur` it replaced, alternating the two so both see the same machine load:

    python benchmarks/bench_augment.py            # the TransReID-SSL crops and the study's
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import numpy as np
import torch
from machine import cpu_name
from PIL import Image
from torchvision.transforms import v2

from reidcli.ssl.augment import MAX_BLUR_SIGMA, CropSpec, MultiCrop, RandomGaussianBlur

SETTINGS = {
    "TransReID-SSL (2 x 256x128 + 8 x 128x64)": (CropSpec(), (256, 128)),
    "study (2 x 64x32 + 4 x 32x16)": (
        CropSpec(global_size=(64, 32), local_size=(32, 16), local_crops=4), (128, 64)),
}


def torchvision_blur(p: float, size: tuple[int, int]) -> v2.Transform:
    """The previous implementation: a float convolution, kernel capped to fit tiny crops."""
    kernel = min(2 * math.ceil(3 * MAX_BLUR_SIGMA) + 1, 2 * ((min(size) - 1) // 2) + 1)
    return v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, MAX_BLUR_SIGMA))], p=p)


def with_torchvision_blur(spec: CropSpec) -> MultiCrop:
    crop = MultiCrop(spec)
    for chain, size in ((crop.global1, spec.global_size), (crop.global2, spec.global_size),
                        (crop.local, spec.local_size)):
        for i, t in enumerate(chain.transforms):
            if isinstance(t, v2.RandomApply) and isinstance(t.transforms[0], RandomGaussianBlur):
                chain.transforms[i] = torchvision_blur(t.p, size)
    return crop


def ms_per_image(crop: MultiCrop, img: Image.Image, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        crop(img)
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=40, help="images per timing")
    p.add_argument("--repeats", type=int, default=3, help="alternating timings; best kept")
    a = p.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"1 thread, load {os.getloadavg()[0]:.1f}")
    print("| crops | source image | torchvision blur ms/img | Pillow blur ms/img | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for name, (spec, src) in SETTINGS.items():
        spec = dataclasses.replace(spec, aspect=(0.4, 0.6))
        img = Image.fromarray(rng.integers(0, 256, (*src, 3), dtype=np.uint8))
        ours, old = MultiCrop(spec), with_torchvision_blur(spec)
        best = {"old": math.inf, "ours": math.inf}
        for _ in range(a.repeats):
            best["old"] = min(best["old"], ms_per_image(old, img, a.images))
            best["ours"] = min(best["ours"], ms_per_image(ours, img, a.images))
        print(f"| {name} | {src[0]}x{src[1]} | {best['old']:.1f} | {best['ours']:.1f} | "
              f"{best['old'] / best['ours']:.2f}x |")


if __name__ == "__main__":
    main()
