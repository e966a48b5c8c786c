"""One-command GPU check: every CUDA path of reidcli exercised and measured in a few minutes.

Needs nothing but the repository: it renders its own synthetic data. Sections (`--only`):

* `finetune`: ViT-B/16 stride 12 + SIE + JPM at 256x128 through `reidcli.training.finetune`,
  bf16 and fp16 (GradScaler), a few hundred steps each: loss finite and falling, images/s,
  model FLOP utilisation (FLOPs of one training step counted by torch's FlopCounterMode),
  peak GPU memory, share of the epoch spent waiting for the loader (pinned memory on CUDA);
* `extract`: `extract_bank` images/s against a bare forward of the same batches;
* `pretrain`: dino, dino-mim and pass on ViT-S through `reidcli.ssl.pretrain`: images/s,
  loader-bound share, peak memory;
* `cfs`: `score_images` images/s (two proxies), the forwards alone, projected time for
  LUPerson's 4.2M images;
* `deploy`: the fine-tuning section's architecture exported by `reid export` (fp16 on a GPU),
  onnxruntime's CUDA provider against torch eager: latency at batch 1, throughput at batch 64
  (needs `onnxruntime-gpu`; a CPU-only onnxruntime fails this section and says so);
* `retrieval`: evaluation and exact re-ranking at Market-1501 and MSMT17 size on synthetic
  feature banks, on the device and on the CPU: metrics equal, times.

Results: `OUT/gpu_check.json` and `OUT/gpu_check.md` (a table ready for
docs/benchmarks.md, with the GPU, torch/CUDA versions and this exact command), rewritten
after every section so a cut-off run still leaves what it measured. A failing section is
recorded and the others still run; the exit status is 1 if any failed. Usage:

    python benchmarks/gpu_check.py --out gpu_check            # one GPU: < 6 min on an H100
    python benchmarks/gpu_check.py --out /tmp/smoke --smoke   # same code, CPU, tiny, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcli.runtime.rundir import WEIGHTS_NAME

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_cfs import LUPERSON, model_only, write_images, write_proxy  # noqa: E402
from bench_extract import forward_rate, preload_batches  # noqa: E402
from bench_retrieval import SIZES  # noqa: E402
from machine import cpu_name  # noqa: E402

# Retrieval last: its CPU re-ranking at MSMT17 size is the longest CPU-bound step, so a
# slot that runs out cuts only that.
SECTIONS = ("finetune", "extract", "pretrain", "cfs", "deploy", "retrieval")

# Dense fp16/bf16 tensor-core peak (TFLOP/s) by device name, most specific first; the MFU
# denominator. `--peak-tflops` overrides it (and gives MFU on cards not listed here).
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4),
               ("GH200", 989.4), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
               ("A10", 125.0), ("V100", 125.0))


@dataclass(frozen=True)
class Profile:
    """Sizes of one run: the GPU check or the CPU smoke test (same code, tiny numbers)."""

    device: str = "cuda"
    synth_ids: int = 400
    synth_size: tuple[int, int] = (256, 128)
    ft_backbone: str = "vit-b"
    ft_size: tuple[int, int] = (256, 128)
    ft_jpm_groups: int = 4
    ft_pk: tuple[int, int] = (16, 4)
    ft_epochs: int = 4
    extract_batch: int = 256
    retrieval_sizes: tuple[str, ...] = ("market", "msmt")
    pt_backbone: str = "vit-s"
    pt_sizes: tuple[tuple[int, int], tuple[int, int]] = ((256, 128), (128, 64))
    pt_batch: int = 64
    pt_iters: int = 200
    pt_head: tuple[int | None, int, int] = (None, 2048, 256)
    """out_dim (None: the method's default), hidden width, bottleneck."""
    pt_local_crops: tuple[int, int] = (8, 3)
    """dino / dino-mim local crops, pass crops per part."""
    cfs_backbone: str = "vit-s"
    cfs_images: int = 4096
    cfs_batch: int = 256


SMOKE = Profile(
    device="cpu", synth_ids=10, synth_size=(64, 32), ft_backbone="vit-tiny-test",
    ft_size=(64, 32), ft_jpm_groups=2, ft_pk=(4, 2), ft_epochs=2, extract_batch=16,
    retrieval_sizes=("smoke",), pt_backbone="vit-tiny-test", pt_sizes=((64, 32), (32, 16)),
    pt_batch=4, pt_iters=2, pt_head=(64, 32, 16), pt_local_crops=(2, 1),
    cfs_backbone="vit-tiny-test", cfs_images=16, cfs_batch=8,
)
SMOKE_BANK = dataclasses.replace(SIZES["n5000"], num_query=60, num_gallery=240, num_ids=30)


@dataclass
class Check:
    """Everything one run knows: where it writes, its sizes, what it measured so far."""

    out: Path
    work: Path
    profile: Profile
    workers: int
    peak_tflops: float | None
    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: list[tuple[str, str, str, str, str]] = dataclasses.field(default_factory=list)
    """(check, setting, images/s, details, ok) per table row."""

    @property
    def device(self) -> torch.device:
        return torch.device(self.profile.device)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def data(self) -> Path:
        """The synthetic Market-layout set every training section shares (rendered once)."""
        root = self.work / "market"
        if not (root / "synth.json").exists():
            from reidcli.data.synth.market import MarketConfig, write_market

            p = self.profile
            write_market(root, MarketConfig(ids=p.synth_ids, size=p.synth_size, seed=0),
                         overwrite=True, workers=max(1, self.workers))
        return root


# -- measurements shared by the sections ----------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def step_flops(run_dir: Path, batch: int, device: torch.device) -> float:
    """FLOPs of one training step (forward, ID + triplet loss, backward) of a run's model."""
    from torch.utils.flop_counter import FlopCounterMode

    from reidcli.models import load_model
    from reidcli.training.losses import ReidLoss

    model, cfg = load_model(run_dir, device=device)
    model.train()
    pids = torch.arange(batch, device=device) % max(2, cfg.num_classes)
    imgs = torch.randn(batch, 3, *cfg.img_size, device=device)
    cams = torch.zeros(batch, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        out = model(imgs, cams, cams)
        ReidLoss()(out.logits, out.feats, pids).total.backward()
    return float(counter.get_total_flops())


def _mfu(flops_per_step: float, steps_per_s: float, peak: float | None) -> float | None:
    return None if not peak else flops_per_step * steps_per_s / (peak * 1e12)


def _rate_after_first(records: list[dict[str, Any]]) -> float:
    """Images/s over the epochs after the first (warm-up, kernel selection), if any."""
    later = records[1:] or records
    return sum(r["images_per_s"] * r["epoch_time_s"] for r in later) / sum(
        r["epoch_time_s"] for r in later)


def _wait_share(records: list[dict[str, Any]]) -> float:
    return sum(r["loader_wait_s"] for r in records) / sum(r["epoch_time_s"] for r in records)


# -- sections ---------------------------------------------------------------------------------
def check_finetune(c: Check) -> None:
    from reidcli.training import FinetuneConfig, Hooks, finetune

    p = c.profile
    data = c.data()
    c.results["finetune"] = {}
    for amp in ("bf16", "fp16"):
        losses: list[float] = []
        run_dir = c.work / f"finetune-{amp}"
        cfg = FinetuneConfig(
            data=f"market1501:{data}", output=str(run_dir), backbone=p.ft_backbone,
            size=p.ft_size, stride=12, sie=True, jpm=True, jpm_groups=p.ft_jpm_groups,
            ids_per_batch=p.ft_pk[0], images_per_id=p.ft_pk[1], epochs=p.ft_epochs,
            warmup_epochs=1, amp=amp, device=p.device, workers=c.workers, progress=False,
            eval_batch_size=p.extract_batch,
        )
        _reset_peak(c.device)
        result, wall = _timed(lambda cfg=cfg, losses=losses: finetune(
            cfg, Hooks(on_batch=lambda info: losses.append(info.loss))), c.device)
        records = result.metrics
        steps = len(losses)
        batch = p.ft_pk[0] * p.ft_pk[1]
        rate = _rate_after_first(records)
        flops = step_flops(run_dir, batch, c.device)
        tenth = max(1, steps // 10)
        first, last = float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:]))
        finite = all(math.isfinite(v) for v in losses)
        mfu = _mfu(flops, rate / batch, c.peak_tflops)
        res = {
            "amp": amp, "steps": steps, "batch": batch, "images_per_s": round(rate, 1),
            "step_tflop": float(f"{flops / 1e12:.4g}"),
            "mfu": None if mfu is None else round(mfu, 4),
            "peak_gib": _peak_gib(c.device), "loader_wait_share": round(_wait_share(records), 3),
            "loss_first_10pct": round(first, 4), "loss_last_10pct": round(last, 4),
            "finite": finite, "falling": last < first, "mAP": result.final.get("mAP"),
            "wall_s": round(wall, 1),
        }
        c.results["finetune"][amp] = res
        setting = (f"{p.ft_backbone} s12 SIE+JPM {p.ft_size[0]}x{p.ft_size[1]}, batch {batch}, "
                   f"{steps} steps, {amp}")
        mfu_text = "n/a" if mfu is None else f"{100 * mfu:.1f}%"
        details = (f"MFU {mfu_text} ({res['step_tflop']} TFLOP/step), peak "
                   f"{_gib(res['peak_gib'])}, loader wait {100 * res['loader_wait_share']:.0f}%, "
                   f"loss {first:.2f} -> {last:.2f}, mAP {_pct(res['mAP'])}")
        c.rows.append((f"finetune {amp}", setting, f"{rate:.0f}", details,
                       _ok(finite and last < first)))


def check_extract(c: Check) -> None:
    from reidcli.data import load_dataset
    from reidcli.inference.extract import ExtractOptions, extract_bank
    from reidcli.models import load_model
    from reidcli.runtime.device import amp_dtype

    p = c.profile
    run_dir = c.work / "finetune-bf16"
    if not (run_dir / WEIGHTS_NAME).is_file():
        raise RuntimeError("needs the finetune section's bf16 run (run it first)")
    spec = f"market1501:{c.data()}"
    ds = load_dataset(spec)
    records = list(ds.query) + list(ds.gallery)
    model, cfg = load_model(run_dir, num_classes=0, device=c.device)
    model.eval()
    amp = amp_dtype("bf16", c.device)
    batches = preload_batches(records, cfg, run_dir, p.extract_batch)
    forward_rate(model, batches, c.device, amp)  # warm-up: allocations, kernel selection
    bare = forward_rate(model, batches, c.device, amp)
    opts = ExtractOptions(checkpoint=run_dir, output=c.work / "bank.h5", data=spec,
                          batch_size=p.extract_batch, workers=c.workers, device=p.device,
                          amp="bf16", overwrite=True, progress=False)
    rate = extract_bank(opts).images_per_second
    c.results["extract"] = {"images": len(records), "batch": p.extract_batch,
                            "images_per_s": round(rate, 1),
                            "forward_images_per_s": round(bare, 1),
                            "ratio": round(rate / bare, 3)}
    c.rows.append(("extract", f"{p.ft_backbone} s12 SIE+JPM, {len(records)} images, batch "
                   f"{p.extract_batch}, bf16", f"{rate:.0f}",
                   f"{100 * rate / bare:.0f}% of the bare forward ({bare:.0f} images/s)",
                   _ok(rate / bare >= 0.9)))


def _metric_diff(a: Any, b: Any) -> float:
    diff = max(abs(a.mAP - b.mAP), abs(a.mINP - b.mINP))
    return max(diff, float(np.max(np.abs(np.asarray(a.cmc) - np.asarray(b.cmc)))))


def check_retrieval(c: Check) -> None:
    from reidcli.retrieval.evaluate import evaluate_features
    from reidcli.retrieval.pipeline import Retrieval
    from reidcli.retrieval.rerank import RerankParams
    from reidcli.retrieval.synthetic import synthetic_splits

    c.results["retrieval"] = {}
    for name in c.profile.retrieval_sizes:
        spec = SMOKE_BANK if name == "smoke" else SIZES[name]
        splits = synthetic_splits(spec)
        q, g = splits["query"], splits["gallery"]
        for rerank in (None, RerankParams()):
            run = functools.partial(evaluate_features, q.feats, g.feats, q.pids, q.camids,
                                    g.pids, g.camids, Retrieval(rerank=rerank))
            run(device=c.profile.device)  # warm-up (CUDA context, kernels)
            on_device, t_dev = _timed(lambda run=run: run(device=c.profile.device), c.device)
            on_cpu, t_cpu = _timed(lambda run=run: run(device="cpu"), torch.device("cpu"))
            diff = _metric_diff(on_device, on_cpu)
            what = "rerank" if rerank else "evaluate"
            c.results["retrieval"][f"{what}_{name}"] = {
                "query": len(q.pids), "gallery": len(g.pids), "device_s": round(t_dev, 2),
                "cpu_s": round(t_cpu, 2), "max_metric_diff": diff,
                "mAP": round(on_device.mAP, 6)}
            c.rows.append((f"{what} {name}", f"{len(q.pids)} x {len(g.pids)}, D {spec.dim}", "-",
                           f"{c.profile.device} {t_dev:.2f} s vs cpu {t_cpu:.2f} s, mAP "
                           f"{100 * on_device.mAP:.2f}%, max metric difference {diff:.1e}",
                           _ok(diff <= 1e-6)))


def check_pretrain(c: Check) -> None:
    from reidcli.ssl.config import PretrainConfig
    from reidcli.ssl.engine import pretrain

    p = c.profile
    data = c.data()
    out_dim, hidden, bottleneck = p.pt_head
    c.results["pretrain"] = {}
    for method in ("dino", "dino-mim", "pass"):
        cfg = PretrainConfig(
            data=f"market1501:{data}", output=str(c.work / f"pretrain-{method}"), method=method,
            backbone=p.pt_backbone, global_size=p.pt_sizes[0], local_size=p.pt_sizes[1],
            local_crops=p.pt_local_crops[0], part_crops=p.pt_local_crops[1], out_dim=out_dim,
            head_hidden=hidden, head_bottleneck=bottleneck, batch_size=p.pt_batch, epochs=3,
            warmup_epochs=1, max_iters=p.pt_iters, device=p.device, workers=c.workers,
            progress=False,
        )
        _reset_peak(c.device)
        result, wall = _timed(lambda cfg=cfg: pretrain(cfg), c.device)
        records = result.metrics
        rate = _rate_after_first(records)
        crops = cfg.resolved().num_local_views
        res = {"iterations": result.iterations, "batch": p.pt_batch,
               "images_per_s": round(rate, 1),
               "loader_wait_share": round(_wait_share(records), 3),
               "peak_gib": _peak_gib(c.device), "loss_last": records[-1]["loss"],
               "wall_s": round(wall, 1)}
        c.results["pretrain"][method] = res
        c.rows.append((f"pretrain {method}", f"{p.pt_backbone}, 2 x {_hw(p.pt_sizes[0])} + "
                       f"{crops} x {_hw(p.pt_sizes[1])}, batch {p.pt_batch}, "
                       f"{result.iterations} steps", f"{rate:.0f}",
                       f"loader wait {100 * res['loader_wait_share']:.0f}%, peak "
                       f"{_gib(res['peak_gib'])}", _ok(math.isfinite(res["loss_last"]))))


def check_cfs(c: Check) -> None:
    from reidcli.runtime.device import amp_dtype
    from reidcli.selection.pipeline import load_source
    from reidcli.selection.score import ProxyPair, ScoreOptions, score_images

    p = c.profile
    size = p.ft_size
    amp = "fp16" if c.cuda else "off"
    root = c.work / "cfs"
    write_images(root / "src", p.cfs_images)
    s = write_proxy(root / "s", p.cfs_backbone, size, 0)
    t = write_proxy(root / "t", p.cfs_backbone, size, 1)
    opts = ScoreOptions(source_model=s, target_model=t, output=root / "scores.h5",
                        batch_size=p.cfs_batch, workers=c.workers, amp=amp, device=p.device,
                        progress=False)
    rate = score_images(load_source(f"luperson:{root / 'src'}"), opts).images_per_second
    pair = ProxyPair(s, t, c.device, amp_dtype(amp, c.device))
    models = model_only(pair, p.cfs_batch, 5)
    hours = LUPERSON / rate / 3600
    c.results["cfs"] = {"images": p.cfs_images, "batch": p.cfs_batch, "amp": amp,
                        "images_per_s": round(rate, 1), "model_only_images_per_s": round(models, 1),
                        "projected_hours_4_2M": round(hours, 2)}
    c.rows.append(("cfs-filter scoring", f"2 x {p.cfs_backbone} {_hw(size)}, batch "
                   f"{p.cfs_batch}, {amp}", f"{rate:.0f}",
                   f"forwards alone {models:.0f} images/s; 4.2M images in {hours:.2f} h",
                   _ok(rate > 0)))


def check_deploy(c: Check) -> None:
    import onnxruntime
    from bench_deploy import QUICK_SETTINGS, Settings, bench_model

    if c.cuda and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise RuntimeError("onnxruntime here has no CUDA provider: pip install onnxruntime-gpu")
    p = c.profile
    # Random weights: speed does not depend on them. No torch.compile: its minutes of
    # compilation do not fit a short GPU slot (bench_deploy.py measures it).
    settings = Settings(device=p.device, compile=False, fp16=c.cuda, batch_calls=5)
    if not c.cuda:
        settings = dataclasses.replace(settings, **QUICK_SETTINGS)
    result = bench_model(p.ft_backbone, p.ft_size, c.work / "deploy", settings)
    c.results["deploy"] = result
    precision = "fp16" if settings.fp16 else "fp32"
    for name, row in result["results"].items():
        c.rows.append((
            "deploy", f"{p.ft_backbone} {_hw(p.ft_size)} {name}, {precision}",
            f"{row['images_per_s']:.0f}",
            f"batch {settings.batch}: {row['throughput_vs_eager']:.2f}x eager; batch 1: "
            f"{row['latency_ms']:.2f} ms ({row['latency_vs_eager']:.2f}x eager)",
            _ok(name != "onnxruntime" or row["throughput_vs_eager"] >= 0.9)))


CHECKS: dict[str, Callable[[Check], None]] = {
    "finetune": check_finetune, "extract": check_extract, "retrieval": check_retrieval,
    "pretrain": check_pretrain, "cfs": check_cfs, "deploy": check_deploy,
}


# -- report -----------------------------------------------------------------------------------
def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _gib(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value} GiB"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ok(good: bool) -> str:
    return "yes" if good else "**no**"


def environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
           "cpu": f"{cpu_name()}, {os.cpu_count()} cores", "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_memory_gib"] = round(
            torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return env


def peak_for(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((tflops for key, tflops in PEAK_TFLOPS if key in name), None)


def write_report(c: Check, command: str, env: dict[str, Any], started: float) -> None:
    from reidcli.utils.io import atomic_write_text

    c.results["environment"] = env
    c.results["command"] = command
    c.results["peak_tflops"] = c.peak_tflops
    c.results["total_s"] = round(time.perf_counter() - started, 1)
    atomic_write_text(c.out / "gpu_check.json", json.dumps(c.results, indent=2) + "\n")
    device = env.get("gpu", "CPU (smoke)")
    lines = [
        f"Device: {device}; torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, "
        f"Python {env['python']}; {env['cpu']}. Total {c.results['total_s']} s.",
        f"Command: `{command}`",
        "",
        "| check | setting | images/s | details | ok |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {' | '.join(row)} |" for row in c.rows),
    ]
    failed = c.results.get("failed", {})
    lines += [f"| {name} | failed | - | {msg} | **no** |" for name, msg in failed.items()]
    atomic_write_text(c.out / "gpu_check.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON + table")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (CI)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers (default: CPU cores - 2, at most 12; smoke: 0)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16/fp16 peak for the MFU (default: by name)")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder for data and runs (default: a temporary one, "
                             "deleted at the end)")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    profile = SMOKE if args.smoke else Profile()
    if profile.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or use --smoke for the CPU check")
    workers = args.workers
    if workers is None:
        workers = 0 if args.smoke else max(1, min(12, (os.cpu_count() or 4) - 2))
    command = shlex.join(["python", "benchmarks/gpu_check.py", *(argv or sys.argv[1:])])
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = args.work or Path(tempfile.mkdtemp(prefix="reid-gpu-check-"))
    scratch.mkdir(parents=True, exist_ok=True)
    device = torch.device(profile.device)
    c = Check(args.out, scratch, profile, workers, peak_for(device, args.peak_tflops))
    env = environment(device)
    started = time.perf_counter()
    print(f"$ {command}\n{json.dumps(env)}", flush=True)
    try:
        for name in sections:
            t0 = time.perf_counter()
            print(f"[{time.perf_counter() - started:6.1f} s] {name} ...", flush=True)
            try:
                CHECKS[name](c)
            except Exception as exc:  # record it, keep the slot for the other sections
                traceback.print_exc()
                c.results.setdefault("failed", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"[{time.perf_counter() - started:6.1f} s] {name} done in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            write_report(c, command, env, started)
            _reset_peak(device)
    finally:
        if args.work is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print((c.out / "gpu_check.md").read_text(), flush=True)
    return 1 if c.results.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
