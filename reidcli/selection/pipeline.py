"""`reid cfs-filter` as a library call: proxies -> scores -> ordered list.

    from reidcli.selection import CfsOptions, cfs_filter
    result = cfs_filter(CfsOptions(source="luperson", target="market1501", keep=0.5,
                                   output=Path("cfs_market.txt")))

Every step skips what is already done: proxies trained earlier in the work folder are
reused (or resumed), a complete scores file of the same models and images is not rescored
(so a different `keep` costs seconds), and an interrupted scoring pass resumes. Under
`torchrun` the process group is joined once for the whole stage: proxies train with DDP,
each rank scores a shard, and rank 0 merges the scores and writes the list.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reidcli.data import load_dataset
from reidcli.data.loading import parse_options
from reidcli.errors import ReidError
from reidcli.runtime import distributed as ddp
from reidcli.runtime.device import amp_dtype, device_type, resolve_device
from reidcli.selection import check as self_check
from reidcli.selection.proxies import ProxySettings, has_labels, obtain_proxies
from reidcli.selection.score import (
    ProxyPair,
    ScoreOptions,
    ScoreResult,
    ScoreSettings,
    SourceImages,
    score_images,
    score_paths,
)
from reidcli.selection.scorefile import ScoreFile, read_scores
from reidcli.selection.select import (
    check_listable,
    count_to_keep,
    is_cfs_list,
    select,
    write_list,
)
from reidcli.utils.outputs import Output, claim_output, spec_path

log = logging.getLogger(__name__)

SCORES_NAME = "scores.h5"


@dataclass
class CfsOptions(ScoreSettings):
    """The stage's options; the scoring pass's own (`ScoreSettings`: batch size, workers,
    device, AMP, checkpoint interval, progress) come from the base class. `overwrite` also
    lets the list replace a file that `reid cfs-filter` did not write."""

    source: str
    output: Path
    """The list to write."""
    target: str | None = None
    """Target dataset; needed only to train the target proxy here (and shown in the header)."""
    keep: float | None = None
    keep_count: int | None = None
    scores: Path | None = None
    """Scores file; default WORKDIR/scores.h5."""
    source_model: Path | None = None
    target_model: Path | None = None
    proxy: ProxySettings = field(default_factory=ProxySettings)
    data_root: str | None = None
    source_options: tuple[str, ...] = ()
    """Dataset options of the source, `KEY=VALUE` (e.g. `duplicates=keep`)."""
    workdir: Path | None = None
    """Proxies, the proxy sample list and the default scores file; default LIST.work/."""
    check_sample: int = 256
    """Target images scored by the self-check (0: no check; it also needs `target`)."""

    @property
    def work(self) -> Path:
        if self.workdir is not None:
            return Path(self.workdir)
        out = Path(self.output)
        return out.with_name(f"{out.stem}.work")

    @property
    def scores_path(self) -> Path:
        return Path(self.scores) if self.scores is not None else self.work / SCORES_NAME


@dataclass
class CfsResult:
    list_path: Path
    scores_path: Path
    total: int
    kept: int
    cutoff: float
    """Lowest kept score."""
    mean_kept: float
    mean_all: float
    source_model: Path
    target_model: Path
    scoring: ScoreResult
    check: self_check.SelfCheck | None = None
    """Where the target's own images rank among the source scores (None: not checked)."""


def load_source(spec: str, data_root: str | None = None,
                options: tuple[str, ...] = ()) -> SourceImages:
    """The source images in source order, with paths relative to the dataset root."""
    dataset = load_dataset(spec, data_root, **parse_options(options))
    return SourceImages.from_records(spec, Path(dataset.root), dataset.training_images())


def _header(opts: CfsOptions, images: SourceImages, source_run: Path, target_run: Path,
            kept: int, cutoff: float, check: self_check.SelfCheck | None
            ) -> dict[str, object]:
    rule = f"fraction {opts.keep}" if opts.keep is not None else f"count {opts.keep_count}"
    checked = (check.summary() if check is not None else "not run (--check-sample 0)"
               if opts.check_sample < 1 else "not run (needs --target)")
    return {
        "source": f"{images.description} ({images.root}), {len(images)} images",
        "target": opts.target or "(not given; target proxy supplied)",
        "source model": source_run.resolve(),
        "target model": target_run.resolve(),
        "keep": f"{rule} -> {kept} of {len(images)} images (lowest kept score {cutoff:.6f})",
        "counts": f"kept {kept}, dropped {len(images) - kept}",
        "scores": opts.scores_path.resolve(),
        "check": checked,
        "use": "reid pretrain --data luperson:SOURCE_ROOT --subset THIS_LIST",
    }



def _advice(opts: CfsOptions) -> str:
    """What to change when the self-check finds the ranking inverted."""
    if opts.target_model is not None:
        return ("check that --target-model is --source-model fine-tuned on this target, "
                "preferably with its identity labels")
    assert opts.target is not None
    if opts.proxy.target_supervised is False and has_labels(opts.target, opts.data_root):
        return ("fine-tune the target proxy on the target's identity labels (drop "
                "--target-self-supervised) or train it longer (--proxy-epochs)")
    if not opts.proxy.supervised_target(opts.target, opts.data_root):
        return ("the target has no identity labels, so its proxy was trained "
                "self-supervised: give it a longer schedule (--proxy-epochs)")
    return "train the proxies longer (--proxy-epochs) or from better weights (--proxy-init)"


def run_check(opts: CfsOptions, scored: ScoreFile, source_run: Path, target_run: Path,
              ctx: ddp.DistContext) -> self_check.SelfCheck | None:
    """Score a sample of target images and place them among the source scores (reused from
    the sidecar file while models, source and sample are the same)."""
    if opts.check_sample < 1 or opts.target is None or len(scored) == 0:
        return None
    split, sample = self_check.target_sample(load_dataset(opts.target, opts.data_root),
                                             opts.check_sample, opts.proxy.seed)
    key = self_check.check_key(scored.attrs, opts.target, sample, opts.proxy.seed)
    path = self_check.sidecar_path(opts.scores_path)
    found = self_check.read_check(path, key)
    if found is None:
        device = resolve_device(opts.device, ctx.local_rank)
        pair = ProxyPair(source_run, target_run, device, amp_dtype(opts.amp, device))
        scores = score_paths(pair, sample, opts.batch_size, opts.workers)
        found = self_check.evaluate(scored.scores, scores, opts.target, split, _advice(opts))
        self_check.write_check(path, found, key)
    log.info("CFS self-check: %s", found.summary())
    if found.inverted:
        log.warning(found.warning())
    return found


def cfs_filter(opts: CfsOptions) -> CfsResult | None:
    """Run the stage; the result on rank 0 (None on the other ranks of a torchrun job)."""
    images = load_source(opts.source, opts.data_root, opts.source_options)
    n_keep = count_to_keep(len(images), opts.keep, opts.keep_count)
    check_listable(images.relative)
    ctx = ddp.init_distributed(device_type(opts.device))
    held = contextlib.ExitStack()
    try:
        held.enter_context(claim_output(Output(
            opts.output, "`reid cfs-filter` (a ranked list)", ours=is_cfs_list,
            inputs=[spec_path(opts.source), opts.scores_path], overwrite=opts.overwrite),
            lock=ctx.is_main))
        source_run, target_run = obtain_proxies(
            images, opts.target, opts.source_model, opts.target_model, opts.work, opts.proxy,
            opts.data_root, ctx,
        )
        scoring = score_images(
            images, ScoreOptions.of(opts, source_run, target_run, opts.scores_path), ctx)
        if not ctx.is_main:
            return None
        scored = read_scores(opts.scores_path)
        if len(scored) != len(images) or any(
                scored.paths[i] != images.relative[i] for i in range(len(images))):
            raise ReidError(f"{opts.scores_path} does not list the source images in source "
                            f"order; remove it and run again")
        chosen = select(scored.scores, keep=opts.keep, keep_count=opts.keep_count)
        assert chosen.kept == n_keep
        check = run_check(opts, scored, source_run, target_run, ctx)
        write_list(opts.output, scored.paths, chosen.order,
                   _header(opts, images, source_run, target_run, chosen.kept, chosen.cutoff,
                           check))
        log.info("kept %d of %d images (scores >= %.4f) in %s", chosen.kept, chosen.total,
                 chosen.cutoff, opts.output)
        return CfsResult(
            list_path=Path(opts.output), scores_path=opts.scores_path, total=chosen.total,
            kept=chosen.kept, cutoff=chosen.cutoff,
            mean_kept=float(np.mean(scored.scores[chosen.order])),
            mean_all=float(np.mean(scored.scores)), source_model=source_run,
            target_model=target_run, scoring=scoring, check=check,
        )
    finally:
        held.close()
        ddp.shutdown(ctx)
