"""The seed papers' ablations in miniature, on synthetic data, through the real CLI.

Every step is a `reid` command (printed before it runs, copy-pasteable; run in --out):

- pretrain: random init vs a small ViT pre-trained with dino, dino-mim and pass on
  `reid synth unlabeled` images, then fine-tuned on the synthetic Market-layout set with one
  fixed budget; also each method's untrained export (its initial weights, so the paired
  difference is what pre-training changed), the teachers' features before fine-tuning, and
  each pre-training's cost (images/s, CPU time, peak memory).
- cfs: pre-training on the CFS 50% subset vs a random 50% vs all images (same number of
  iterations), then the same fine-tuning.
- sie-jpm: baseline vs +SIE vs +JPM vs both, on a Market-layout set with strong camera
  styles and occluders.
- stride: patch stride 16 vs 12.
- rerank: k-reciprocal re-ranking, query expansion and database-side augmentation on top of
  the best fine-tuned model of the pretrain part.
- transfer: direct transfer between two labelled synthetic worlds (other seed, palette and
  camera styles): fine-tuned on A, on B and on A+B jointly, each run evaluated on both;
  also A and B alone for twice the epochs, the steps of A+B.

Fine-tunings run with several seeds (`--ft-seeds`); the report gives each seed, the mean and
the standard deviation, and is written to OUT/study.md and OUT/results.json.

    .venv/bin/python benchmarks/study.py                       # all parts, ~115 min on 2 CPU cores
    .venv/bin/python benchmarks/study.py --parts sie-jpm,stride --ft-seeds 0,1

Finished runs are reused when their command is the same, so an interrupted study restarts
where it stopped; `--fresh` deletes --out first.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import cpu_name
from runner import REID, cached, parallel, run_model, shown

from reidcli.data.parsers.luperson import read_list
from reidcli.data.synth import read_manifest
from reidcli.runs import compare_runs, summarise_run
from reidcli.runs import mean_sd as mean_and_sd
from reidcli.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
PARTS = ("pretrain", "cfs", "sie-jpm", "stride", "rerank", "transfer")
METHODS = ("dino", "dino-mim", "pass")
# The like-for-like controls: each method's *initial* weights (same seed, same architecture),
# exported after one step at a learning rate of 1e-12. Fine-tuned with the same seeds, they
# isolate what pre-training changed from the luck of the initial draw. dino and dino-mim
# build the same backbone from the same seed (the mask embedding is created after it);
# pass's [PART] tokens change the draw, so it gets its own.
UNTRAINED = {"dino": "pt_untrained", "dino-mim": "pt_untrained", "pass": "pt_untrained_pass"}
CFS_STARTS = ("all", "cfs50", "random50")
SIE_JPM = {"baseline": [], "+sie": ["--sie"], "+jpm": ["--jpm"], "+sie+jpm": ["--sie", "--jpm"]}
RERANK = {
    "plain": [],
    "+qe (k 3)": ["--qe", "3"],
    "+dba (k 3)": ["--dba", "3"],
    "+qe +dba": ["--qe", "3", "--dba", "3"],
    "+rerank (20/6/0.3)": ["--rerank"],
    "+rerank (TransReID 50/15/0.3)": ["--rerank", "--k1", "50", "--k2", "15"],
}
# The transfer part's training sets: each world alone, then both jointly (one classifier
# over disjoint id and camera ranges).
WORLDS = ("world_a", "world_b")
TRANSFER = {"A": ("world_a",), "B": ("world_b",), "A+B": WORLDS}
SCORES = ("mAP", "R1", "mINP")

# What the pre-training recipe changes from the LUPerson defaults, and why.
PRETRAIN_RECIPE = """\
# written by benchmarks/study.py: DINO on 64x32 synthetic crops
[model]
head_hidden = 256       # K, hidden width and bottleneck sized for a 64-d backbone
head_bottleneck = 64
drop_path = 0.0
[input]
crop_aspect = [0.4, 0.6]          # person-shaped crops
mean = [0.5, 0.5, 0.5]            # the ViT normalisation fine-tuning uses
std = [0.5, 0.5, 0.5]
colour_jitter = {jitter}
grayscale_prob = {gray}
solarize_prob = {solarize}
blur_sigma = {blur}               # DINO's 0.1-2 px is sized for 224-256 px crops
"""
FINETUNE_RECIPE = """\
# written by benchmarks/study.py: TransReID's padding is sized for 256x128 crops
[input]
padding = {padding}
erase_prob = {erase}
"""


@dataclass
class Study:
    args: argparse.Namespace
    out: Path
    env: dict[str, str]
    results: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)

    # ---- helpers -----------------------------------------------------------------------
    def _run(self, target: str, cmd: list[str], done: Any = run_model) -> dict[str, float]:
        self.commands.append(shown(cmd))
        return cached(self.out / target, cmd, self.out, self.env, done)

    def _batch(self, jobs: list[tuple[str, list[str]]], done: Any = run_model) -> list[dict]:
        return parallel(self.args.jobs, lambda job: self._run(job[0], job[1], done), jobs)

    @property
    def ft_seeds(self) -> list[int]:
        return [int(s) for s in self.args.ft_seeds.split(",") if s]

    # ---- data --------------------------------------------------------------------------
    def data(self) -> None:
        a = self.args
        sized = ["--size", "128x64", "--workers", "2"]
        common = ["--seed", str(a.seed), *sized]
        jobs = []
        # Only the parts that use them make the unlabelled and the plain labelled set.
        if {"pretrain", "cfs"} & set(a.parts):
            jobs.append(("lup", [REID, "synth", "unlabeled", "lup", "--images", str(a.images),
                                 "--target-like", str(a.target_like), "--target-cams", "6",
                                 *common]))
        if {"pretrain", "cfs", "stride", "rerank"} & set(a.parts):
            jobs.append(("market", [REID, "synth", "market", "market", "--ids", str(a.ids),
                                    "--cams", "6", *common]))
        if "sie-jpm" in a.parts:
            jobs.append(("market_hard", [
                REID, "synth", "market", "market_hard", "--ids", str(a.ids), "--cams", "6",
                "--camera-strength", str(a.camera_strength), "--occlusion", str(a.occlusion),
                *common]))
        if "transfer" in a.parts:
            # Two worlds: another seed each (clothing palette, cameras, scenery), and B with
            # stronger camera styles, so the gap is more than a re-draw of one world.
            for i, (name, strength) in enumerate(zip(WORLDS, a.world_strength.split(","),
                                                     strict=True)):
                jobs.append((name, [
                    REID, "synth", "market", name, "--ids", str(a.ids), "--cams", "6",
                    "--camera-strength", strength, "--seed", str(a.seed + 1 + i), *sized]))
        for name, cmd in jobs:
            self._run(name, cmd, lambda p: (p / "synth.json").is_file())
        atomic_write_text(self.out / "pretrain.toml", PRETRAIN_RECIPE.format(
            jitter=a.colour_jitter, gray=a.grayscale, solarize=a.solarize,
            blur=blur_sigma(a.blur, a.size)))
        for size, name in ((a.size, "finetune.toml"), ("128x64", "finetune128.toml")):
            width = int(size.split("x")[1])
            atomic_write_text(self.out / name, FINETUNE_RECIPE.format(
                padding=max(2, width // 10), erase=a.erase))

    # ---- pre-training ------------------------------------------------------------------
    def pretrain_cmd(self, name: str, method: str, epochs: int, warmup: int,
                     extra: list[str], lr: float | None = None) -> list[str]:
        a = self.args
        h, w = (int(v) for v in a.size.split("x"))
        cmd = [REID, "pretrain", "--recipe", "pretrain.toml", "--method", method,
               "--data", "luperson:lup", "--backbone", a.backbone, "--stem", a.stem,
               "--size", a.size,
               "--local-size", f"{h // 2}x{w // 2}", "--out-dim", str(a.out_dim),
               "--epochs", str(epochs), "--warmup-epochs", str(warmup),
               "--batch-size", str(a.pt_batch), "--lr", str(a.pt_lr if lr is None else lr),
               "--momentum-teacher", str(a.momentum_teacher), "--workers", str(a.workers),
               "--device", a.device, "--seed", str(a.seed), *extra, "-o", name]
        if method == "pass":
            cmd[-2:-2] = ["--parts", str(a.pass_parts), "--part-crops", str(a.part_crops)]
        else:
            cmd[-2:-2] = ["--local-crops", str(a.local_crops)]
        return cmd

    def pretrain_cost(self, name: str, stats: dict[str, float]) -> dict[str, Any]:
        run = summarise_run(self.out / name).values
        trained = int(run["iterations"]) * self.args.pt_batch
        return stats | {
            "images_trained": trained,
            "images_per_s_engine": round(run["images/s"], 1),
            "images_per_s_wall": round(trained / stats["wall_s"], 1),
            "cpu_ms_per_image": round(1000 * stats["cpu_s"] / trained, 1),
            "final_loss": round(run["loss"], 3),
            "teacher_entropy": round(run["teacher_entropy"], 3),
        }

    def finetune_cmd(self, name: str, seed: int, start: str | None,
                     data: tuple[str, ...] = ("market",), extra: list[str] | None = None,
                     size: str | None = None, epochs: int | None = None) -> list[str]:
        a = self.args
        size = size or a.size
        recipe = "finetune.toml" if size == a.size else "finetune128.toml"
        cmd = [REID, "finetune", "--recipe", recipe, *specs("--data", data),
               "--backbone", a.backbone, "--stem", a.stem, "--size", size,
               "--epochs", str(epochs or a.ft_epochs),
               "--optimizer", "adamw", "--lr", str(a.ft_lr),
               "--warmup-epochs", str(min(2, a.ft_epochs)),
               "--batch", "16x4", "--drop-path", "0", "--workers", str(a.workers),
               "--device", a.device,
               "--seed", str(seed), *(extra or []), "-o", name]
        if start:
            cmd[-2:-2] = ["--pretrained", start]
        return cmd

    def finetune_all(self, starts: dict[str, tuple[str | None, list[str]]],
                     prefix: str, suffix: str = "", **kw: Any) -> dict[str, list[dict[str, float]]]:
        """Fine-tune every start with every seed; {start: [{seed, mAP, R1, mINP}, ...]}.

        `suffix` picks one evaluation dataset of runs that evaluate several (`reid compare`
        names their scores `mAP [NAME]`)."""
        # Seed by seed, so that a study stopped early has every start's first seeds.
        jobs = [(label, seed, run_name(prefix, label, seed), start, extra)
                for seed in self.ft_seeds for label, (start, extra) in starts.items()]
        self._batch([(name, self.finetune_cmd(name, seed, start, extra=extra, **kw))
                     for _, seed, name, start, extra in jobs])
        rows: dict[str, list[dict[str, float]]] = {}
        for label in starts:
            cmp = compare_runs([self.out / name for lab, _, name, _, _ in jobs if lab == label])
            if len(cmp.groups) != 1:  # a label's runs must differ by their seed alone
                raise SystemExit(f"{label}: runs differ in {cmp.differing}, not only the seed")
            rows[label] = [{"seed": run.seed, **{k: round(100 * run.values[k + suffix], 2)
                                                 for k in SCORES}}
                           for run in cmp.runs]
        return rows

    def zero_shot(self, run: str) -> dict[str, float]:
        """mAP of a pre-trained teacher's features, before any fine-tuning."""
        bank = f"{run}.h5"
        self._run(bank, [REID, "extract", "-c", run, "-o", bank, "--data", "market1501:market",
                         "--workers", str(self.args.workers), "--device", self.args.device],
                  lambda p: p.is_file())
        return self.evaluate(bank, f"{run}.json", [])

    def evaluate(self, bank: str, name: str, extra: list[str]) -> dict[str, float]:
        self._run(name, [REID, "evaluate", bank, "--json", name, *extra], lambda p: p.is_file())
        res = json.loads((self.out / name).read_text())
        return {k: round(100 * res[key], 2)
                for k, key in (("mAP", "mAP"), ("R1", "rank1"), ("mINP", "mINP"))}

    # ---- parts -------------------------------------------------------------------------
    def part_pretrain(self) -> None:
        a = self.args
        names = {m: f"pt_{m}" for m in METHODS}
        stats = self._batch([(names[m], self.pretrain_cmd(names[m], m, a.pt_epochs,
                                                          a.pt_warmup, [])) for m in METHODS])
        cost = {m: self.pretrain_cost(names[m], s) for m, s in zip(METHODS, stats, strict=True)}
        controls = {UNTRAINED["dino"]: "dino", UNTRAINED["pass"]: "pass"}
        self._batch([(n, self.pretrain_cmd(n, m, a.pt_epochs, a.pt_warmup,
                                           ["--max-iters", "1"], lr=1e-12))
                     for n, m in controls.items()])
        zero = {m: self.zero_shot(names[m]) for m in METHODS}
        zero |= {n: self.zero_shot(n) for n in controls}
        parts = ["--part-tokens", str(a.pass_parts)]
        starts: dict[str, tuple[str | None, list[str]]] = {
            "random": (None, []),
            f"random, {a.pass_parts} part tokens": (None, parts),
        }
        for n, m in controls.items():
            starts[n] = (n, parts if m == "pass" else [])
        for m in METHODS:
            starts[m] = (names[m], parts if m == "pass" else [])
        rows = self.finetune_all(starts, "ft")
        self.results["pretrain"] = {"finetune": rows, "paired": paired(rows), "cost": cost,
                                    "before_finetuning": zero}

    def part_cfs(self) -> None:
        a = self.args
        if not run_model(self.out / "pt_dino"):
            self._batch([("pt_dino", self.pretrain_cmd("pt_dino", "dino", a.pt_epochs,
                                                       a.pt_warmup, []))])
        # theta_s = the DINO run on all images; theta_t = theta_s fine-tuned on the target.
        self._run("cfs.txt", [
            REID, "cfs-filter", "--source", "luperson:lup", "--target", "market1501:market",
            "--keep", "0.5", "-o", "cfs.txt", "--source-model", "pt_dino",
            "--target-supervised", "--proxy-epochs", str(a.cfs_target_epochs),
            "--workers", str(a.workers), "--device", a.device, "--seed", str(a.seed)],
            lambda p: p.is_file())
        manifest = read_manifest(self.out / "lup")
        kept = [path for _, path in read_list(self.out / "cfs.txt")]
        every = sorted(row.path for row in manifest)
        rand = random.Random(a.seed).sample(every, len(kept))
        atomic_write_text(self.out / "random50.txt", "".join(f"{p}\n" for p in rand))
        target = {row.path for row in manifest if row.domain == "target"}
        precision = {n: round(sum(p in target for p in lst) / len(lst), 3)
                     for n, lst in (("cfs50", kept), ("random50", rand), ("all", every))}
        # Half the images, twice the epochs: every start gets the same iterations.
        runs = {"cfs50": ["--subset", "cfs.txt"], "random50": ["--subset", "random50.txt"]}
        self._batch([(f"pt_dino_{n}", self.pretrain_cmd(
            f"pt_dino_{n}", "dino", 2 * a.pt_epochs, 2 * a.pt_warmup, extra))
            for n, extra in runs.items()])
        starts = {"random": (None, []), "all": ("pt_dino", []),
                  "cfs50": ("pt_dino_cfs50", []), "random50": ("pt_dino_random50", [])}
        self.results["cfs"] = {"finetune": self.finetune_all(starts, "ft"),
                               "target_like_share": precision}

    def part_sie_jpm(self) -> None:
        starts = {label: (None, extra) for label, extra in SIE_JPM.items()}
        self.results["sie-jpm"] = {"finetune": self.finetune_all(
            starts, "ftcam", data=("market_hard",))}

    def part_stride(self) -> None:
        starts = {f"stride {s}": (None, ["--stride", str(s)]) for s in (16, 12)}
        self.results["stride"] = {"finetune": self.finetune_all(
            starts, "ft128", size="128x64")}

    def part_rerank(self) -> None:
        pre = self.results.get("pretrain", {}).get("finetune")
        if not pre:
            raise SystemExit("the rerank part needs the pretrain part (--parts pretrain,rerank)")
        best = max(pre, key=lambda k: statistics.mean(r["mAP"] for r in pre[k]))
        rows: dict[str, list[dict[str, float]]] = {}
        for seed in self.ft_seeds:
            run = run_name("ft", best, seed)
            bank = f"{run}.h5"
            self._run(bank, [REID, "extract", "-c", run, "-o", bank, "--data",
                             "market1501:market", "--workers", str(self.args.workers), "--device",
                             self.args.device], lambda p: p.is_file())
            for i, (label, extra) in enumerate(RERANK.items()):
                rows.setdefault(label, []).append(
                    {"seed": seed, **self.evaluate(bank, f"{run}_e{i}.json", extra)})
        self.results["rerank"] = {"model": best, "finetune": rows}

    def part_transfer(self) -> None:
        # Every run evaluates on both worlds (the first --eval-data, its own, picks best/):
        # one training gives the in-domain and the direct-transfer score.
        # The training sets go with the options (data=()), so that one batch runs them all
        # and the second world's call only reads the same runs back.
        evals = specs("--eval-data", WORLDS)
        starts = {label: (None, [*specs("--data", data), *evals])
                  for label, data in TRANSFER.items()}
        # A+B's epochs hold both worlds' images: twice the steps of one world's. The same
        # world alone for twice the epochs tells extra data from extra steps.
        epochs = 2 * self.args.ft_epochs
        longer = {f"{label}, {epochs} epochs": starts[label] for label in ("A", "B")}
        rows: dict[str, dict[str, list[dict[str, float]]]] = {}
        for world in WORLDS:
            suffix = f" [market1501:{world}]"
            rows[world] = self.finetune_all(starts, "fttr", suffix=suffix, data=())
            rows[world] |= self.finetune_all(longer, "fttr", suffix=suffix, data=(),
                                             epochs=epochs)
        self.results["transfer"] = {"finetune": rows}



def blur_sigma(option: str, size: str) -> str:
    """The recipe's blur range: `auto` scales DINO's (0.1, 2.0) by crop height / 256."""
    if option != "auto":
        return option
    scale = int(size.split("x")[0]) / 256
    return f"[{0.1 * scale:g}, {2.0 * scale:g}]"


def specs(option: str, folders: tuple[str, ...]) -> list[str]:
    """`--data market1501:F` (or another option) for each synthetic Market-layout folder."""
    return [x for folder in folders for x in (option, f"market1501:{folder}")]


def run_name(prefix: str, label: str, seed: int) -> str:
    """A folder name for a labelled run: `random, 3 part tokens` -> ft_random_3_part_tokens_s0."""
    slug = "".join(c if c.isalnum() or c == "-" else "_" for c in label.replace("+", "p"))
    return f"{prefix}_{'_'.join(filter(None, slug.split('_')))}_s{seed}"


def paired(rows: dict[str, list[dict[str, float]]]) -> dict[str, list[float]]:
    """Per seed, each method's fine-tuned mAP minus that of its untrained export."""
    return {m: [round(r["mAP"] - c["mAP"], 2)
                for r, c in zip(rows[m], rows[UNTRAINED[m]], strict=True)] for m in METHODS}


# ---- report ------------------------------------------------------------------------------
def mean_sd(values: list[float]) -> str:
    return "{:.1f} ± {:.1f}".format(*mean_and_sd(values))


def table(rows: dict[str, list[dict[str, float]]], label: str) -> str:
    seeds = "/".join(str(r["seed"]) for r in next(iter(rows.values())))
    lines = [f"| {label} | mAP % (mean ± sd) | mAP % per seed ({seeds}) | R1 % | mINP % |",
             "| --- | --- | --- | --- | --- |"]
    for name, rs in rows.items():
        per_seed = " / ".join(f"{r['mAP']:.1f}" for r in rs)
        lines.append(f"| {name} | {mean_sd([r['mAP'] for r in rs])} | {per_seed} | "
                     f"{mean_sd([r['R1'] for r in rs])} | {mean_sd([r['mINP'] for r in rs])} |")
    return "\n".join(lines)


def transfer_table(rows: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """Training set x test world, mAP % mean ± sd: {world: {training set: [per seed]}}."""
    worlds = list(rows)
    lines = ["| trained on | " + " | ".join(f"mAP % on {w}" for w in worlds) + " |",
             "| --- |" + " --- |" * len(worlds)]
    for label in rows[worlds[0]]:
        lines.append(f"| {label} | " + " | ".join(
            mean_sd([r["mAP"] for r in rows[w][label]]) for w in worlds) + " |")
    return "\n".join(lines)


def report(study: Study, started: float) -> str:
    r, a = study.results, study.args
    out = [f"Machine: {cpu_name()}, {platform.machine()}, device {a.device}; "
           f"{time.perf_counter() - started:.0f} s for this invocation "
           f"(reused runs cost nothing). Options: `{' '.join(a.argv)}`\n"]
    if "pretrain" in r:
        p = r["pretrain"]
        out += ["## 1. Random init vs pre-training methods\n",
                table(p["finetune"], "start"), "",
                "Paired with the untrained export of the same initial weights "
                "(same fine-tuning seed):\n",
                "| method | control | mAP difference per seed | mean | seeds ahead |",
                "| --- | --- | --- | --- | --- |"]
        out += [f"| {m} | {UNTRAINED[m]} | {' / '.join(f'{d:+.1f}' for d in ds)} | "
                f"{statistics.mean(ds):+.1f} | {sum(d > 0 for d in ds)} of {len(ds)} |"
                for m, ds in p["paired"].items()]
        out += ["",
                "Teacher features before fine-tuning (extract + evaluate):\n",
                "| method | mAP % | R1 % | mINP % |", "| --- | --- | --- | --- |"]
        out += [f"| {m} | {z['mAP']} | {z['R1']} | {z['mINP']} |"
                for m, z in p["before_finetuning"].items()]
        out += ["", "Pre-training cost:\n",
                "| method | images | wall s | images/s (engine) | CPU ms / image | peak RSS GiB "
                "| final loss | teacher entropy |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        out += [f"| {m} | {c['images_trained']} | {c['wall_s']} | {c['images_per_s_engine']} | "
                f"{c['cpu_ms_per_image']} | {c['peak_rss_gib']} | {c['final_loss']} | "
                f"{c['teacher_entropy']} |" for m, c in p["cost"].items()]
        out.append("")
    if "cfs" in r:
        c = r["cfs"]
        out += ["## 2. CFS 50% vs random 50% vs all source images\n",
                table(c["finetune"], "pre-training data (dino)"), "",
                "Share of target-like images: " + ", ".join(
                    f"{k} {v}" for k, v in c["target_like_share"].items()), ""]
    for key, title, label in (("sie-jpm", "3. Baseline vs +SIE vs +JPM (strong camera styles, "
                               "occlusion)", "model"), ("stride", "4. Patch stride 16 vs 12",
                                                        "stride"),
                              ("rerank", "5. Re-ranking and query expansion", "evaluation")):
        if key in r:
            extra = f" on `{r[key]['model']}`" if key == "rerank" else ""
            out += [f"## {title}{extra}\n", table(r[key]["finetune"], label), ""]
    if "transfer" in r:
        t = r["transfer"]["finetune"]
        out += ["## 6. Direct transfer between two synthetic worlds\n",
                transfer_table(t), ""]
        out += [f"Tested on {world}:\n\n{table(rows, 'trained on')}\n" for world, rows in t.items()]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/out/study")
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    p.add_argument("--parts", default=",".join(PARTS), help=f"any of {', '.join(PARTS)}")
    p.add_argument("--seed", type=int, default=0, help="synthetic world and pre-training seed")
    p.add_argument("--images", type=int, default=4000, help="unlabelled images")
    p.add_argument("--target-like", type=float, default=0.3)
    p.add_argument("--ids", type=int, default=100, help="identities of the Market-layout sets")
    p.add_argument("--camera-strength", type=float, default=2.5, help="sie-jpm data")
    p.add_argument("--occlusion", type=float, default=0.3, help="sie-jpm data")
    p.add_argument("--world-strength", default="1,2",
                   help="transfer data: --camera-strength of worlds A and B (seeds: --seed + 1, "
                        "--seed + 2)")
    p.add_argument("--backbone", default="vit-tiny-test")
    p.add_argument("--stem", default="patch", help="patch or ics, for every start")
    p.add_argument("--size", default="64x32", help="pre-training globals and fine-tuning input")
    p.add_argument("--out-dim", type=int, default=1024, help="head prototypes K")
    p.add_argument("--local-crops", type=int, default=4)
    p.add_argument("--pass-parts", type=int, default=3)
    p.add_argument("--part-crops", type=int, default=2)
    p.add_argument("--colour-jitter", default="[0.4, 0.4, 0.2, 0.1]",
                   help="pre-training ColorJitter (b, c, s, h) as a TOML array (DINO's)")
    p.add_argument("--grayscale", type=float, default=0.2)
    p.add_argument("--solarize", type=float, default=0.2)
    p.add_argument("--blur", default="[0.1, 2.0]",
                   help="pre-training blur sigma range '[lo, hi]' in pixels (default: DINO's, "
                        "as parts 1-2 ran); auto: DINO's scaled by the crop height / 256")
    p.add_argument("--pt-epochs", type=int, default=10)
    p.add_argument("--pt-warmup", type=int, default=1)
    p.add_argument("--pt-batch", type=int, default=64)
    p.add_argument("--pt-lr", type=float, default=2e-3, help="per 256 images")
    p.add_argument("--momentum-teacher", type=float, default=0.99)
    p.add_argument("--cfs-target-epochs", type=int, default=4)
    p.add_argument("--ft-epochs", type=int, default=40)
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--erase", type=float, default=0.0, help="fine-tuning random erasing")
    p.add_argument("--ft-seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS of every command; 0 leaves torch's default")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="commands side by side")
    p.add_argument("--workers", type=int, default=1,
                   help="DataLoader workers of every training and extraction command (1 on a "
                        "2-core machine; on a GPU machine, about cores / --jobs: the multi-crop "
                        "loader bounds pre-training there)")
    args = p.parse_args()
    args.argv = sys.argv[1:]
    args.parts = [s for s in args.parts.split(",") if s]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")

    out: Path = args.out.resolve()
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"$ cd {out}    # every command below runs here", flush=True)
    # One intra-op thread per process: on 2 cores, 2 jobs side by side beat 1 job with 2
    # threads (OpenMP barriers spin), and loader workers use a core of their own.
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    study = Study(args, out, env)
    started = time.perf_counter()
    saved = out / "results.json"
    if saved.is_file():
        study.results = json.loads(saved.read_text()).get("results", {})
    study.data()
    for part in PARTS:
        if part in args.parts:
            getattr(study, "part_" + part.replace("-", "_"))()
            atomic_write_text(saved, json.dumps({"results": study.results}, indent=2))
    text = report(study, started)
    atomic_write_text(out / "study.md", text + "\n")
    atomic_write_text(out / "commands.txt", "\n".join(dict.fromkeys(study.commands)) + "\n")
    print("\n" + text)


if __name__ == "__main__":
    main()
