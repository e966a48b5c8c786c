"""Deployment speed: torch eager vs torch.compile vs onnxruntime on the same function.

All three run `DeployModule` (uint8 pixels in, normalisation folded in, test feature out) of a
random-init model (speed does not depend on the weights); onnxruntime runs the graph that
`reid export` writes for it (verified against torch at export), and in float32 also the
`reid export --portable` graph (standard ONNX operators only, as row `ort-portable`). Two
numbers per back end:

* latency at batch 1: median wall time of one call (ms), after warm-up;
* throughput at batch 64: images per second over whole batches.

Rounds alternate between the back ends so that a noisy shared machine slows all of them alike;
the medians over rounds are reported, with ratios to eager. torch and onnxruntime get the same
number of threads (`--threads`, default: all cores).

    python benchmarks/bench_deploy.py                 # vit-small-demo 128x64, vit-b 256x128
    python benchmarks/bench_deploy.py --quick         # a tiny model: checks that it runs
    python benchmarks/bench_deploy.py --device cuda --fp16   # GPU: CUDA provider, fp16 graph
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from machine import cpu_name

from reidcli.deploy.export import ExportOptions, export_onnx
from reidcli.inference.graph import DeployModule
from reidcli.inference.onnx_model import OnnxModel
from reidcli.models import ModelConfig, build_model, load_model, save_model
from reidcli.runtime.rundir import WEIGHTS_NAME

REPO = Path(__file__).resolve().parent.parent
MODELS = [("vit-small-demo", (128, 64)), ("vit-b", (256, 128))]
QUICK = [("vit-tiny-test", (64, 32))]


def _timed(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


@dataclass(frozen=True)
class Settings:
    batch: int = 64
    rounds: int = 3
    latency_calls: int = 20
    batch_calls: int = 3
    device: str = "cpu"
    compile: bool = True
    fp16: bool = False


QUICK_SETTINGS = {"batch": 8, "rounds": 1, "latency_calls": 2, "batch_calls": 1}


def _prepare(backbone: str, size: tuple[int, int], out: Path, device: str, compile_: bool,
             fp16: bool) -> dict[str, Callable[[np.ndarray], object]]:
    run = out / f"{backbone}-{size[0]}x{size[1]}"
    if not (run / WEIGHTS_NAME).exists():
        torch.manual_seed(0)
        cfg = ModelConfig(backbone=backbone, img_size=size, drop_path=0.0)
        save_model(run, build_model(cfg), cfg)
    # float32: the default graph (onnxruntime's fused attention) and `--portable`'s standard
    # operators; a half graph always has standard operators.
    variants = {"onnxruntime": False} if fp16 else {"onnxruntime": False, "ort-portable": True}
    graphs = {}
    for name, portable in variants.items():
        path = run / f"model{'-fp16' if fp16 else ''}{'-portable' if portable else ''}.onnx"
        if not path.exists():
            export_onnx(ExportOptions(run, path, device="cpu", fp16=fp16, portable=portable))
        graphs[name] = OnnxModel(path, device=device, threads=torch.get_num_threads())
    graph = graphs["onnxruntime"]
    model, _ = load_model(run, num_classes=0, device=device)
    if fp16:  # the torch back ends run half precision too (DeployModule casts the input)
        model = model.half()
    module = DeployModule(model, graph.spec).to(device).eval()
    dev = torch.device(device)

    def torch_call(fn: Callable) -> Callable[[np.ndarray], object]:
        def call(pixels: np.ndarray) -> object:
            with torch.inference_mode():
                out = fn(torch.from_numpy(pixels).to(dev))
                return out.cpu()
        return call

    backends: dict[str, Callable[[np.ndarray], object]] = {"eager": torch_call(module)}
    if compile_:
        compiled = torch.compile(module, dynamic=False)
        backends["compile"] = torch_call(compiled)
    backends.update({name: g.run for name, g in graphs.items()})
    return backends


def bench_model(backbone: str, size: tuple[int, int], out: Path, s: Settings) -> dict:
    """Random-init `backbone` at `size` (run dir and graphs cached under `out`), timed."""
    backends = _prepare(backbone, size, out, s.device, s.compile, s.fp16)
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 3, *size), dtype=np.uint8)
    many = rng.integers(0, 256, (s.batch, 3, *size), dtype=np.uint8)
    broken: dict[str, str] = {}
    for name, fn in list(backends.items()):
        try:  # warm-up; torch.compile compiles here (once per input shape)
            start = time.perf_counter()
            for x in (one, many):
                fn(x)
                fn(x)
            print(f"  {backbone} {name}: warm-up {time.perf_counter() - start:.1f} s", flush=True)
        except Exception as err:  # torch.compile needs a C++ toolchain and may fail here
            broken[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            del backends[name]
    lat: dict[str, list[float]] = {n: [] for n in backends}
    thr: dict[str, list[float]] = {n: [] for n in backends}
    for _ in range(s.rounds):
        for name, fn in backends.items():
            lat[name].append(1000 * _timed(lambda fn=fn: fn(one), s.latency_calls))
            thr[name].append(s.batch / _timed(lambda fn=fn: fn(many), s.batch_calls))
    rows = {n: {"latency_ms": statistics.median(lat[n]),
                "images_per_s": statistics.median(thr[n])} for n in backends}
    base = rows["eager"]
    for r in rows.values():
        r["latency_vs_eager"] = r["latency_ms"] / base["latency_ms"]
        r["throughput_vs_eager"] = r["images_per_s"] / base["images_per_s"]
    return {"backbone": backbone, "size": list(size), "batch": s.batch, "fp16": s.fp16,
            "results": rows, "failed": broken}


def _print(result: dict) -> None:
    h, w = result["size"]
    print(f"\n{result['backbone']} {h}x{w}: latency at batch 1, throughput at batch "
          f"{result['batch']}")
    print(f"  {'back end':<12} {'latency ms':>11} {'x eager':>8} {'img/s':>9} {'x eager':>8}")
    for name, r in result["results"].items():
        print(f"  {name:<12} {r['latency_ms']:>11.2f} {r['latency_vs_eager']:>8.2f} "
              f"{r['images_per_s']:>9.1f} {r['throughput_vs_eager']:>8.2f}")
    for name, why in result["failed"].items():
        print(f"  {name:<12} failed: {why}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and few calls")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=20)
    parser.add_argument("--batch-calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CUDA provider)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--fp16", action="store_true",
                        help="half precision: an --fp16 graph, a half torch model (for GPUs)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "deploy")
    args = parser.parse_args()
    settings = Settings(batch=args.batch, rounds=args.rounds, latency_calls=args.latency_calls,
                        batch_calls=args.batch_calls, device=args.device,
                        compile=not args.no_compile, fp16=args.fp16)
    if args.quick:
        settings = dataclasses.replace(settings, **QUICK_SETTINGS)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    gpu = f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
    machine = (f"{cpu_name()}{gpu}, {os.cpu_count()} cores, {args.threads} threads, torch "
               f"{torch.__version__}, onnxruntime {onnxruntime.__version__}, Python "
               f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}"
               f"{', fp16' if args.fp16 else ''}")
    print(machine, flush=True)
    results = []
    for backbone, size in QUICK if args.quick else MODELS:
        result = bench_model(backbone, size, args.out, settings)
        _print(result)
        results.append(result)
    report = {"machine": machine, "load_after": os.getloadavg()[0], "results": results}
    (args.out / "bench_deploy.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload after: {report['load_after']:.2f}; wrote {args.out / 'bench_deploy.json'}")


if __name__ == "__main__":
    main()
