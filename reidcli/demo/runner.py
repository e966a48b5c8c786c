"""`reid demo`: the whole pipeline on synthetic data, stage by stage, in one work directory.

synth market + synth unlabeled -> cfs-filter -> pretrain -> finetune (random init and
pre-trained init, same schedule) -> extract -> evaluate (plain and re-ranked) -> visualize,
then a second synthetic world: the pre-trained-init model evaluated there as it is (direct
transfer) and after `finetune --unsupervised` on its unlabelled train split (adapted).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from reidcli.demo import stages
from reidcli.demo.context import DemoContext, StageOutcome, WorkPaths, remove
from reidcli.demo.plan import FULL, QUICK, DemoPlan
from reidcli.demo.report import Row, Scores, adaptation_verdict, results_table, verdict
from reidcli.errors import ReidError
from reidcli.utils.io import atomic_write_text
from reidcli.utils.logging import console as default_console
from reidcli.utils.outputs import Output, claim_output

MARKER = "reid-demo.json"
RANDOM = "random"
PRETRAINED = "pretrained"
TRANSFER = "transfer"
ADAPTED = "adapted"


@dataclass
class DemoOptions:
    workdir: Path = Path("reid-demo")
    quick: bool = False
    fresh: bool = False
    device: str = "auto"
    workers: int = 1
    """DataLoader workers of every stage."""
    progress: bool = True
    plan: DemoPlan | None = None
    """Override the sizing (tests); None = the full or the quick plan."""


@dataclass
class DemoResult:
    rows: list[Row]
    verdict: str
    picture: Path
    cfs_skipped: str | None
    """Why the cfs-filter step did not run (None when it ran or was reused)."""
    seconds: float
    outcomes: list[StageOutcome] = field(default_factory=list)


def prepare_workdir(workdir: Path, fresh: bool, plan: DemoPlan) -> None:
    """Create (or with `fresh`, empty) the work directory, refusing folders that the demo
    did not create: it deletes what it finds there."""
    marker = workdir / MARKER
    if workdir.exists():
        if not workdir.is_dir():
            raise ReidError(f"--workdir {workdir} exists and is not a folder")
        if any(workdir.iterdir()) and not marker.is_file():
            raise ReidError(f"--workdir {workdir} is not empty and was not made by `reid demo` "
                            f"(no {MARKER}); choose another --workdir")
        if fresh:
            for child in workdir.iterdir():
                remove(child)
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps({"plan": plan.name}, indent=1) + "\n")


@contextlib.contextmanager
def torch_threads(device: str, workers: int) -> Iterator[int]:
    """Intra-op threads for the demo's CPU work: the cores the loader workers leave free.

    The demo's model is tiny, so more threads than free cores only adds contention
    (measured: 2 threads next to a busy loader worker on 2 cores ran 6x slower than 1).
    """
    saved = torch.get_num_threads()
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    threads = max(1, min(4, (os.cpu_count() or 1) - workers)) if cpu else saved
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(saved)


def _scores(outcome: StageOutcome) -> Scores:
    return Scores.from_result(outcome.result)


def _model_rows(ctx: DemoContext, name: str, label: str, trained: StageOutcome,
                run: str | None = None, data: str | None = None) -> tuple[Row, StageOutcome]:
    bank = stages.extract(ctx, name, trained, run, data)
    plain = stages.evaluate(ctx, name, bank, rerank=False)
    reranked = stages.evaluate(ctx, name, bank, rerank=True)
    return Row(label, _scores(plain), _scores(reranked)), bank


def run_demo(opts: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run (or reuse) every stage and return the final table's numbers."""
    console = console or default_console
    plan = opts.plan or (QUICK if opts.quick else FULL)
    if opts.workers < 0:
        raise ReidError(f"--workers must be >= 0, got {opts.workers}")
    workdir = Path(opts.workdir)
    # Locked for the whole demo: a second `reid demo` into it would delete this one's work.
    with claim_output(Output(workdir, "`reid demo`", directory=True, option="--workdir")):
        return _run_demo(opts, console, plan, workdir)


def _run_demo(opts: DemoOptions, console: Console, plan: DemoPlan, workdir: Path
              ) -> DemoResult:
    prepare_workdir(workdir, opts.fresh, plan)
    ctx = DemoContext(WorkPaths(workdir), plan, console, opts.device, opts.workers,
                      opts.progress)
    start = time.perf_counter()
    synth_workers = max(1, min(2, os.cpu_count() or 1))
    with torch_threads(opts.device, opts.workers) as threads:
        console.print(f"[bold]reid demo[/] ({plan.name}): work directory {workdir}, "
                      f"device {opts.device}, {threads} torch thread(s), "
                      f"{opts.workers} loader worker(s)", highlight=False)
        market = stages.synth_market(ctx, synth_workers)
        unlabeled = stages.synth_unlabeled(ctx, synth_workers)
        recipe = stages.write_recipe(ctx)
        upstream = [market, unlabeled]
        subset: Path | None = None
        cfs_skipped = stages.cfs_unavailable_reason()
        if cfs_skipped is None:
            cfs = stages.cfs_filter(ctx, upstream, recipe)
            upstream, subset = [cfs], ctx.paths.cfs_list
        else:
            console.rule("[bold]3. cfs-filter[/] [yellow](skipped)")
            console.print(f"[yellow]cfs-filter step skipped: it is not available in this "
                          f"installation ({cfs_skipped}); pre-training uses all unlabelled "
                          f"images.[/]", highlight=False)
        ssl = stages.pretrain(ctx, upstream, recipe, subset)
        random_run = stages.finetune(ctx, RANDOM, "5a. fine-tune from random init", [market],
                                     None)
        pre_run = stages.finetune(ctx, PRETRAINED, "5b. fine-tune from the pre-trained model",
                                  [market, ssl], ctx.paths.run("pretrain"))
        random_row, _ = _model_rows(ctx, RANDOM, "random init", random_run)
        pre_label = "pre-trained init (DINO" + (", CFS" if subset is not None else "") + ")"
        pre_row, pre_bank = _model_rows(ctx, PRETRAINED, pre_label, pre_run)
        picture = stages.visualize(ctx, PRETRAINED, pre_bank)
        world = stages.synth_market(ctx, synth_workers, second=True)
        transfer_row, _ = _model_rows(ctx, TRANSFER, "second world: direct transfer", pre_run,
                                      run=PRETRAINED, data=ctx.second_world_spec)
        adapt_run = stages.adapt(ctx, ADAPTED, "7. adapt the pre-trained-init model to the second "
                                 "world without its labels", [pre_run, world],
                                 ctx.paths.run(PRETRAINED))
        adapted_row, _ = _model_rows(ctx, ADAPTED, "second world: adapted (--unsupervised)",
                                     adapt_run, data=ctx.second_world_spec)
    rows = [random_row, pre_row, transfer_row, adapted_row]
    said = verdict(random_row, pre_row) + " " + adaptation_verdict(transfer_row, adapted_row)
    seconds = time.perf_counter() - start
    console.rule("[bold]results")
    console.print(results_table(rows, f"reid demo ({plan.name}): test split of the synthetic "
                                      f"target (second world: its own test split), % "
                                      f"(RR = k-reciprocal re-ranking)"))
    console.print(said, highlight=False)
    console.print(f"Ranked lists of the pre-trained model: [bold]{picture.result['picture']}[/]"
                  f"  (query, then top {plan.show_k}; green correct, red incorrect, orange "
                  f"same camera, grey junk)", highlight=False)
    console.print(f"Finished in {seconds / 60:.1f} min; everything is in {workdir}/ and a "
                  f"second `reid demo` reuses it (`--fresh` starts over).", highlight=False)
    return DemoResult(rows, said, Path(picture.result["picture"]), cfs_skipped, seconds,
                      list(ctx.outcomes))
