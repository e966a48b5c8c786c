"""Evidence for `reid finetune --unsupervised` on two synthetic worlds (docs/unsupervised.md).

Run:  python benchmarks/usl_evidence.py [--work DIR] [--seeds 0,1,2] [--quick] [--oracle]
      [--camera-norm]
Two labelled worlds from `reid synth market` with different seeds, so different cameras,
camera styles and clothing palettes: "source" (seed 0) and "target" (seed 1). With the same
small ViT and the same budget, per training seed:
  direct transfer  supervised on the source, evaluated on the target;
  UDA              that model adapted with --unsupervised on the target's train split;
  USL              --unsupervised on the target from the untrained network;
  supervised       supervised on the target (the ceiling).
It prints mean +- sd of target mAP / R1 over the seeds, and the pseudo-label purity (ARI) per
epoch of the UDA and USL runs. `--oracle` adds a diagnostic arm: UDA with the target's true
train labels in place of the pseudo labels (the same memory, loss and schedule), which
separates the training mechanics from the quality of the clustering; `--camera-norm` adds UDA
with camera-aware clustering (`reid finetune --unsupervised --camera-norm`). Every run is an
ordinary run directory under --work; finished runs are reused. Run it under
`flock /tmp/reid-cpu.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reidcli.runtime.rundir import RunDir

SIZE = (64, 32)
# The full `reid demo`'s model, data sizes and fine-tuning (docs/demo.md).
COMMON: dict[str, Any] = dict(
    backbone="vit-tiny-test", size=SIZE, optimizer="adamw", padding=3, erase_prob=0.0,
    ids_per_batch=16, images_per_id=4, workers=0, device="cpu", progress=False,
    eval_batch_size=128, drop_path=0.0,
)
SUPERVISED: dict[str, Any] = dict(epochs=40, warmup_epochs=2, lr=1e-3)
# The full demo's adaptation (reidcli/demo/plan.py): k1 and eps scaled down to 24 images per
# identity (the reference's k1 30 / eps 0.6 merge this world into a few clusters).
UNSUPERVISED: dict[str, Any] = dict(
    unsupervised=True, epochs=10, warmup_epochs=0, lr=1e-4, iters=20, eps=0.5,
    min_samples=4, k1=12, k2=6, eval_every=2,
)


def synth(work: Path, quick: bool, camera_strength: float = 1.0) -> dict[str, Path]:
    from reidcli.data.synth import MarketConfig, write_market

    ids, cams, per_cam = (24, 3, 2) if quick else (120, 6, 4)
    worlds = {}
    for name, seed in (("source", 0), ("target", 1)):
        root = work / name
        if not (root / "query").is_dir():
            write_market(root, MarketConfig(ids=ids, cams=cams, seed=seed, size=SIZE,
                                            per_cam=per_cam, camera_strength=camera_strength),
                         overwrite=True)
        worlds[name] = root
    return worlds


def train(out: Path, data: Path, seed: int, **kw: Any) -> list[dict[str, Any]] | str:
    """The run's metrics; for a run that stops with a ReidError, its message."""
    from reidcli.errors import ReidError

    try:
        return _train(out, data, seed, **kw)
    except ReidError as err:
        return str(err)


def _train(out: Path, data: Path, seed: int, **kw: Any) -> list[dict[str, Any]]:
    from reidcli.training import FinetuneConfig, finetune

    run = RunDir(out)
    metrics = run.metrics_path
    if not run.has_checkpoint() or not metrics.is_file():
        cfg = FinetuneConfig(data=f"market1501:{data}", output=str(out), seed=seed,
                             **{**COMMON, **kw})
        if out.exists():
            import shutil

            shutil.rmtree(out)
        finetune(cfg)
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def evaluate_on(run: Path, data: Path) -> dict[str, float]:
    """Target mAP of a run's model (direct transfer)."""
    import torch

    from reidcli.data import load_dataset
    from reidcli.data.transforms import build_test_transform
    from reidcli.models import load_model
    from reidcli.training.evaluation import extract, make_eval_loader, retrieval_metrics

    model, cfg = load_model(run, num_classes=0)
    dataset = load_dataset(f"market1501:{data}")
    tf = build_test_transform(cfg.img_size, cfg.mean, cfg.std)
    device = torch.device("cpu")
    q, g = (extract(model, make_eval_loader(dataset.split(s), tf, 128, 0, False), device, None)
            for s in ("query", "gallery"))
    return retrieval_metrics(q, g)


@contextlib.contextmanager
def true_labels(data: Path) -> Iterator[None]:
    """Within: every clustering returns the train split's true identities (a diagnostic)."""
    import numpy as np

    from reidcli.data import load_dataset
    from reidcli.training import cluster_contrast
    from reidcli.unsupervised.pseudo_labels import PseudoLabels

    truth = np.array([r.pid for r in load_dataset(f"market1501:{data}").train])
    real = cluster_contrast.pseudo_labels
    cluster_contrast.pseudo_labels = lambda *_a, **_k: PseudoLabels(
        truth.copy(), int(truth.max()) + 1)
    try:
        yield
    finally:
        cluster_contrast.pseudo_labels = real


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/reid-usl-evidence"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--quick", action="store_true", help="smaller worlds and budgets (a check)")
    p.add_argument("--oracle", action="store_true", help="add UDA with the true labels")
    p.add_argument("--camera-norm", action="store_true",
                   help="add UDA with --camera-norm (clusters on camera-centred features)")
    p.add_argument("--camera-strength", type=float, default=1.0,
                   help="`reid synth market --camera-strength` of both worlds")
    a = p.parse_args()
    if a.quick:
        SUPERVISED.update(epochs=2)
        COMMON.update(ids_per_batch=8)
        UNSUPERVISED.update(epochs=2, iters=2, eval_every=1, min_samples=2, k1=6, k2=2)
    start, load = time.perf_counter(), os.getloadavg()
    worlds = synth(a.work, a.quick, a.camera_strength)
    rows: dict[str, list[dict[str, float]]] = {}
    purity: dict[str, list[list[float]]] = {}
    curves: dict[str, list[list[float]]] = {}
    failed: list[str] = []

    def keep(name: str, seed: int, m: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
        if isinstance(m, str):
            failed.append(f"{name}, seed {seed}: {m}")
            return []
        rows.setdefault(name, []).append(m[-1])
        return m

    def curve(tag: str, m: list[dict[str, Any]]) -> None:
        if m:
            purity.setdefault(tag, []).append([r.get("purity_ari", float("nan")) for r in m])
            curves.setdefault(tag, []).append([r["mAP"] for r in m if "mAP" in r])

    for seed in (int(s) for s in a.seeds.split(",")):
        runs = a.work / f"seed{seed}"
        keep("supervised on the source (in its own world)", seed,
             train(runs / "source_sup", worlds["source"], seed, **SUPERVISED))
        rows.setdefault("direct transfer (source model)", []).append(
            evaluate_on(runs / "source_sup", worlds["target"]))
        for name, pretrained in (("UDA (adapted source model)", runs / "source_sup"),
                                 ("USL (from the untrained network)", None)):
            tag = name.split()[0].lower()
            extra = {"pretrained": str(pretrained)} if pretrained else {}
            m = keep(name, seed, train(runs / tag, worlds["target"], seed, **UNSUPERVISED,
                                       **extra))
            curve(tag, m)
        if a.camera_norm:
            name = "UDA with --camera-norm"
            m = keep(name, seed, train(runs / "uda_cn", worlds["target"], seed, **UNSUPERVISED,
                                       camera_norm=True, pretrained=str(runs / "source_sup")))
            curve("uda_cn", m)
        if a.oracle:
            with true_labels(worlds["target"]):
                keep("UDA with the true labels (oracle, diagnostic)", seed,
                     train(runs / "oracle", worlds["target"], seed, **UNSUPERVISED,
                           pretrained=str(runs / "source_sup")))
        keep("supervised on the target (ceiling)", seed,
             train(runs / "target_sup", worlds["target"], seed, **SUPERVISED))
    print(f"- Load average at the start: {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.")
    print("| run (evaluated on the target world unless said) | mAP % (mean +- sd) | "
          "R1 % (mean +- sd) | seeds |")
    print("| --- | --- | --- | --- |")
    for name, results in rows.items():
        cells = []
        for key in ("mAP", "R1"):
            values = [100 * r[key] for r in results]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} +- {sd:.1f}")
        print(f"| {name} | {cells[0]} | {cells[1]} | {len(results)} |")
    for what, table, fmt in (("pseudo-label purity (ARI)", purity, "{:.2f}"),
                             ("target mAP % at the evaluated epochs", curves, "{:.1%}")):
        for tag, lines in table.items():
            mean = [statistics.mean(c[i] for c in lines) for i in range(len(lines[0]))]
            print(f"- {tag.upper()} {what}, mean over {len(lines)} seed(s), by epoch: "
                  + ", ".join(fmt.format(v) for v in mean))
    for line in failed:
        print(f"- stopped: {line}")
    load = os.getloadavg()
    print(f"- {time.perf_counter() - start:.0f} s; {platform.machine()}, {os.cpu_count()} cores; "
          f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.")


if __name__ == "__main__":
    main()
