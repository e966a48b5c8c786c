"""Streaming CFS scoring: cos(theta_s(x), theta_t(x)) for every source image x.

Each image is decoded once per batch and fed to both proxies (one preprocessing per distinct
input size / normalisation, so two proxies that share them share the tensor); only the
per-image cosine is kept. Scores stream into a `ScoreWriter` that checkpoints every
`checkpoint_every` batches, so an interrupted run over millions of images resumes from its
last checkpoint. Under `torchrun` each rank scores a contiguous shard into its own file
and rank 0 concatenates them in rank order: the result equals a single-process run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from reidcli.data.images import read_image
from reidcli.data.records import ImageRecord
from reidcli.data.transforms import build_test_transform
from reidcli.errors import ReidError
from reidcli.inference.features import FeatureExtractor
from reidcli.models.config import ModelConfig
from reidcli.models.layouts import WEIGHTS_NAME
from reidcli.runtime import distributed as ddp
from reidcli.runtime.device import amp_dtype, resolve_device
from reidcli.runtime.files import file_sha256, shard
from reidcli.selection.scorefile import ScoreWriter, matches, read_scores
from reidcli.ssl.data import PathTable
from reidcli.utils.outputs import Output, claim_output, spec_path
from reidcli.utils.partial_h5 import remove_partial
from reidcli.utils.progress import stream_progress

log = logging.getLogger(__name__)

UNKNOWN = -1
"""Camera / view id for source images: unknown, so SIE proxies use their mean embedding."""


@dataclass(kw_only=True)
class ScoreSettings:
    """How a scoring pass runs, whatever it scores with (`CfsOptions` carries them too)."""

    batch_size: int = 256
    workers: int = 4
    amp: str = "auto"
    device: str = "auto"
    checkpoint_every: int = 50
    overwrite: bool = False
    progress: bool = True


@dataclass
class ScoreOptions(ScoreSettings):
    source_model: Path
    target_model: Path
    output: Path

    @classmethod
    def of(cls, settings: ScoreSettings, source_model: Path, target_model: Path,
           output: Path) -> ScoreOptions:
        """`settings` (any `ScoreSettings`, e.g. the stage's options) for these models."""
        shared = {f.name: getattr(settings, f.name) for f in dataclasses.fields(ScoreSettings)}
        return cls(source_model=source_model, target_model=target_model, output=output,
                   **shared)


@dataclass
class SourceImages:
    """The images to score: absolute paths to read, relative paths to record.

    Both are `PathTable`s (one byte buffer each) rather than lists of records: about 450 MB
    at 4.2M images instead of well over 1 GB, and DataLoader workers do not copy the pages
    that reference counting would dirty in a list of Python objects.
    """

    description: str
    root: Path
    paths: PathTable
    relative: PathTable

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def from_records(cls, description: str, root: Path,
                     records: Sequence[ImageRecord]) -> SourceImages:
        return cls(description, root, PathTable([r.path for r in records]),
                   PathTable(relative_paths(records, root)))


@dataclass
class ScoreResult:
    path: Path
    images: int
    skipped: bool = False
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def relative_paths(records: Sequence[ImageRecord], root: Path) -> list[str]:
    """Each record's path relative to `root`, with `/` separators (the list format)."""
    prefix = str(root).rstrip(os.sep) + os.sep
    out = []
    for r in records:
        # A plain prefix cut: os.path.relpath costs seconds per million paths.
        if not r.path.startswith(prefix):
            # relpath would write `../..` into the list, which names a file outside the root
            # that a list reader refuses (and that moves when the list does).
            raise ReidError(f"source image {r.path} is not inside the source root {root} "
                            "(a link out of it?): the list names images relative to the root")
        out.append(r.path[len(prefix):].replace(os.sep, "/"))
    return out


class _ScoreDataset(Dataset):
    """Item i -> (one tensor per preprocessing of image lo + i, i)."""

    def __init__(self, paths: PathTable, lo: int, hi: int, transform: _Views) -> None:
        self.paths, self.lo, self.n = paths, lo, hi - lo
        self.transform = transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, ...], int]:
        return self.transform(read_image(self.paths[self.lo + index])), index


class _Views:
    """PIL image -> one tensor per distinct preprocessing (picklable for workers)."""

    def __init__(self, keys: Sequence[tuple[Any, ...]]) -> None:
        self.transforms = [build_test_transform(size, mean, std) for size, mean, std in keys]

    def __call__(self, img: Image.Image) -> tuple[torch.Tensor, ...]:
        return tuple(t(img) for t in self.transforms)


def _preprocessing(cfg: ModelConfig) -> tuple[Any, ...]:
    return tuple(cfg.img_size), tuple(cfg.mean), tuple(cfg.std)  # type: ignore[arg-type]


class ProxyPair:
    """theta_s and theta_t loaded on one device; `scores(views)` -> cosine per image."""

    def __init__(self, source_run: Path, target_run: Path, device: torch.device,
                 amp: torch.dtype | None) -> None:
        from reidcli.models.checkpoint import load_model

        s_model, self.s_cfg = load_model(source_run, num_classes=0, device=device)
        t_model, self.t_cfg = load_model(target_run, num_classes=0, device=device)
        if s_model.feat_dim != t_model.feat_dim:
            raise ReidError(
                f"the proxies give features of different sizes ({s_model.feat_dim} from "
                f"{source_run}, {t_model.feat_dim} from {target_run}): the target proxy must "
                f"be the source proxy fine-tuned, with the same backbone and heads"
            )
        self.device = device
        self.source = FeatureExtractor(s_model, device, amp)
        self.target = FeatureExtractor(t_model, device, amp)
        keys = list(dict.fromkeys([_preprocessing(self.s_cfg), _preprocessing(self.t_cfg)]))
        self.keys = keys
        self.s_view = keys.index(_preprocessing(self.s_cfg))
        self.t_view = keys.index(_preprocessing(self.t_cfg))

    def transform(self) -> _Views:
        return _Views(self.keys)

    def scores(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B,) float32 cosine similarities on the CPU."""
        on_device = [v.to(self.device, non_blocking=True) for v in views]
        b = on_device[0].shape[0]
        unknown = torch.full((b,), UNKNOWN, dtype=torch.long, device=self.device)
        fs = self.source(on_device[self.s_view], unknown, unknown)
        ft = self.target(on_device[self.t_view], unknown, unknown)
        return F.cosine_similarity(fs, ft, dim=1, eps=1e-12)


def provenance(images: SourceImages, opts: ScoreOptions, amp: torch.dtype | None
               ) -> dict[str, Any]:
    """What a scores file was made from: a mismatch means rescoring, never mixing."""
    return {
        "source": images.description,
        "source_root": str(images.root),
        "images": len(images),
        "source_model": str(Path(opts.source_model).resolve()),
        "source_model_sha256": file_sha256(Path(opts.source_model) / WEIGHTS_NAME),
        "target_model": str(Path(opts.target_model).resolve()),
        "target_model_sha256": file_sha256(Path(opts.target_model) / WEIGHTS_NAME),
        "amp": "off" if amp is None else str(amp).removeprefix("torch."),
    }


def _check_finite(scores: np.ndarray, paths: Sequence[str]) -> None:
    bad = ~np.isfinite(scores)
    if bad.any():
        first = paths[int(np.flatnonzero(bad)[0])]
        raise ReidError(
            f"{int(bad.sum())} image(s) got a non-finite score (first: {first}); with --amp "
            f"fp16 features can overflow: try --amp bf16 or --amp off"
        )


def _scored_batches(pair: ProxyPair, paths: PathTable, lo: int, hi: int, batch_size: int,
                    workers: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(scores, offsets from `lo`) per batch of images lo..hi-1, in order."""
    loader = DataLoader(
        _ScoreDataset(paths, lo, hi, pair.transform()),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pair.device.type == "cuda",
    )
    for views, index in loader:
        yield pair.scores(views).numpy(), index


def score_paths(pair: ProxyPair, paths: Sequence[str], batch_size: int = 256,
                workers: int = 0) -> np.ndarray:
    """The CFS score of each image file in `paths` (in memory; for small sets)."""
    table = PathTable(list(paths))
    parts = [s for s, _ in _scored_batches(pair, table, 0, len(table), batch_size, workers)]
    scores = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    _check_finite(scores, paths)
    return scores


def _score_shard(
    writer: ScoreWriter, images: SourceImages, lo: int, hi: int, pair: ProxyPair,
    opts: ScoreOptions, progress: Any,
) -> None:
    done = writer.rows_done
    start = lo + done
    if done:
        log.info("%d of %d images already scored, continuing", done, hi - lo)
    if start >= hi:
        return
    task = progress.add_task("cfs score", total=hi - lo, completed=done)
    batches = _scored_batches(pair, images.paths, start, hi, opts.batch_size, opts.workers)
    for step, (scores, index) in enumerate(batches, start=1):
        paths = [images.relative[start + i] for i in index.tolist()]
        _check_finite(scores, paths)
        writer.append(scores, paths)
        if step % opts.checkpoint_every == 0:
            writer.checkpoint()
        progress.advance(task, len(paths))
    writer.checkpoint()


def _rank_file(output: Path, rank: int) -> Path:
    return output.with_name(f"{output.stem}.rank{rank}{output.suffix}")


def _merge(shards: Sequence[Path], output: Path, attrs: dict[str, Any]) -> None:
    with ScoreWriter(output, attrs=attrs) as writer:
        for path in shards:
            part = read_scores(path)
            writer.append(part.scores, part.paths)
    for path in shards:
        path.unlink()


def score_images(images: SourceImages, opts: ScoreOptions,
                 ctx: ddp.DistContext | None = None) -> ScoreResult:
    """Score `images` with the two proxies into `opts.output` (skip if already complete).

    Joins the torchrun process group unless the caller passes its own `ctx` (the pipeline,
    which also trains proxies in the same group).
    """
    if opts.batch_size < 1 or opts.checkpoint_every < 1:
        raise ReidError("--batch-size and the checkpoint interval must be positive")
    own = ctx is None
    if ctx is None:
        wants_cuda = opts.device.startswith("cuda") or (
            opts.device == "auto" and torch.cuda.is_available())
        ctx = ddp.init_distributed("cuda" if wants_cuda else "cpu")
    held = contextlib.ExitStack()
    try:
        device = resolve_device(opts.device, ctx.local_rank)
        amp = amp_dtype(opts.amp, device)
        prov = provenance(images, opts, amp)
        output = Path(opts.output)
        held.enter_context(claim_output(Output(
            output, "`reid cfs-filter` from these models and images", option="--scores",
            ours=lambda p: matches(p, prov, len(images)), overwrite=opts.overwrite,
            inputs=[spec_path(images.description)]), lock=ctx.is_main))
        if output.exists() and not opts.overwrite:
            log.info("%s already holds these scores; nothing to score", output)
            remove_partial(output)  # a kill between the final rename and the clean-up
            return ScoreResult(output, len(images), skipped=True)
        pair = ProxyPair(Path(opts.source_model), Path(opts.target_model), device, amp)
        lo, hi = shard(len(images), ctx.rank, ctx.world_size)
        target = _rank_file(output, ctx.rank) if ctx.enabled else output
        shard_prov = prov | ({"shard": f"{lo}:{hi}"} if ctx.enabled else {})
        started = time.perf_counter()
        if not matches(target, shard_prov, hi - lo):
            progress = stream_progress(enabled=opts.progress and ctx.is_main)
            with progress, ScoreWriter(target, attrs=shard_prov, resume=True,
                                       keep_partial=True) as writer:
                _score_shard(writer, images, lo, hi, pair, opts, progress)
        seconds = time.perf_counter() - started
        if ctx.enabled:
            ddp.barrier(ctx)
            if ctx.is_main:
                _merge([_rank_file(output, r) for r in range(ctx.world_size)], output, prov)
            ddp.barrier(ctx)
        return ScoreResult(output, len(images), seconds=seconds)
    finally:
        held.close()
        if own:
            ddp.shutdown(ctx)
