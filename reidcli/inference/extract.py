"""`reid extract`: a trained model + images -> an HDF5 feature bank, streamed and resumable.

Rows are written in record order, split by split, through `BankWriter`, which checkpoints
every `checkpoint_every` batches; an interrupted run restarts from the last checkpoint of
its partial file (same model, same inputs) instead of from zero. Under `torchrun` every rank
extracts a contiguous shard of each split into its own partial bank and rank 0 concatenates
the shards in rank order, so the result is identical to a single-process run.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from reidcli.data import load_dataset
from reidcli.data.joint import Source, shift_cameras
from reidcli.data.joint import camera_offset as joint_camera_offset
from reidcli.data.loading import parse_options
from reidcli.data.records import UNKNOWN_CAMERA, ImageRecord
from reidcli.data.roots import parse_spec, resolve_root
from reidcli.errors import BankError, ReidError
from reidcli.inference.backend import load_backend
from reidcli.inference.features import FeatureExtractor
from reidcli.retrieval.bank import BankWriter, read_bank
from reidcli.runtime import distributed as ddp
from reidcli.runtime.device import device_type, resolve_device
from reidcli.runtime.files import shard
from reidcli.utils.diskerrors import check_free_space
from reidcli.utils.outputs import Output, check_output, claim_output
from reidcli.utils.partial_h5 import partial_path, remove_partial
from reidcli.utils.progress import stream_progress

log = logging.getLogger(__name__)


@dataclass
class ExtractOptions:
    checkpoint: Path | None
    """Run directory; None with `onnx`."""
    output: Path
    data: str | None = None
    data_root: str | None = None
    splits: Sequence[str] = ("query", "gallery")
    data_options: Sequence[str] = ()
    images: Path | None = None
    images_split: str = "images"
    cam_regex: str | None = None
    batch_size: int = 128
    workers: int = 4
    flip: bool = False
    amp: str = "auto"
    device: str = "auto"
    dtype: str = "float32"
    overwrite: bool = False
    checkpoint_every: int = 50
    progress: bool = True
    onnx: Path | None = None
    """A graph written by `reid export`, run by onnxruntime instead of the run directory."""
    replace_stale: bool = False
    """Replace a bank made from another model or other images (a cache, as `reid search`'s)."""


@dataclass
class ExtractResult:
    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    skipped: bool = False
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds > 0 else 0.0


def image_folder_records(folder: Path, cam_regex: str | None = None) -> list[ImageRecord]:
    """Every image below `folder` (sorted), unlabelled; cameras from `cam_regex` if given.

    `cam_regex` is searched in the file name and must have a named group `cam` holding a
    1-based camera number (as in Market-style names, `c3` -> camera id 2). Without it the
    camera is unknown (-1).
    """
    dataset = load_dataset(f"luperson:{folder}")
    return [image_record(r.path, cam_regex) for r in dataset.train]


def image_record(path: str, cam_regex: str | None = None) -> ImageRecord:
    """An unlabelled record of one image, its camera parsed by `cam_regex` (see above)."""
    if cam_regex is None:
        return ImageRecord(path, -1, UNKNOWN_CAMERA, 0)
    pattern = re.compile(cam_regex)
    if "cam" not in pattern.groupindex:
        raise ReidError(f"--cam-regex {cam_regex!r} needs a named group (?P<cam>...)")
    m = pattern.search(Path(path).name)
    if m is None:
        raise ReidError(f"--cam-regex {cam_regex!r} does not match {path}")
    return ImageRecord(path, -1, int(m.group("cam")) - 1, 0)


def gather_records(opts: ExtractOptions) -> tuple[str, dict[str, list[ImageRecord]]]:
    """(dataset description for provenance, records per split)."""
    if (opts.data is None) == (opts.images is None):
        raise ReidError("give exactly one of --data NAME[:PATH] and --images DIR")
    if opts.images is not None:
        return str(opts.images), {opts.images_split: image_folder_records(opts.images,
                                                                          opts.cam_regex)}
    dataset = load_dataset(opts.data, opts.data_root,  # type: ignore[arg-type]
                           **parse_options(opts.data_options))
    desc = " ".join([opts.data, *(f"-O {o}" for o in opts.data_options)])  # type: ignore[list-item]
    return desc, {s: dataset.split(s) for s in opts.splits}



def camera_offset(opts: ExtractOptions, sources: Sequence[Source]) -> int | None:
    """Where the images' cameras sit in the model's SIE table: 0 for a one-dataset model;
    for a joint model the range of the training dataset the images come from (same folder,
    else the only one of the same name), or None (unknown camera) for any other images."""
    if not sources:
        return 0
    offset = None
    if opts.data is not None:
        parsed = parse_spec(opts.data)
        offset = joint_camera_offset(sources, parsed.info.name,
                                     resolve_root(parsed, opts.data_root))
    if offset is None:
        log.warning("a model trained jointly on %s: these images are from none of them, so "
                    "their cameras are unknown to SIE (the mean embedding)",
                    ", ".join(s.label for s in sources))
    return offset


def _matches(path: Path, provenance: dict[str, object], rows: dict[str, int]) -> bool:
    try:
        with read_bank(path) as bank:
            same = all(bank.attrs.get(k) == v for k, v in provenance.items())
            return same and {s: len(bank[s]) for s in bank.splits} == rows
    except BankError:
        return False


def _loader(records: Sequence[ImageRecord], transform, opts: ExtractOptions,
            pin: bool) -> DataLoader:
    from reidcli.data.torch_dataset import ReidImageDataset

    return DataLoader(
        ReidImageDataset(records, transform),
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=opts.workers,
        pin_memory=pin,
        persistent_workers=False,
    )


def _write_split(
    writer: BankWriter, name: str, records: Sequence[ImageRecord], extractor: FeatureExtractor,
    transform, opts: ExtractOptions, progress, cam_offset: int | None = 0,
) -> int:
    done = writer.rows_done.get(name, 0)
    todo = records[done:]
    if done:
        log.info("split %s: %d of %d rows already written, continuing", name, done, len(records))
    if not todo:
        return done
    task = progress.add_task(f"extract {name}", total=len(records), completed=done)
    loader = _loader(todo, transform, opts, pin=extractor.device.type == "cuda")
    for step, (imgs, pids, camids, viewids, index) in enumerate(loader, start=1):
        feats = extractor(imgs, shift_cameras(camids, cam_offset), viewids)
        batch = [todo[i] for i in index.tolist()]
        writer.append(name, feats.numpy(), pids.numpy(), camids.numpy(),
                      [r.path for r in batch], viewids.numpy())
        if step % opts.checkpoint_every == 0:
            writer.checkpoint()
        progress.advance(task, len(batch))
    writer.checkpoint()
    return len(records)


def _merge_shards(shards: Sequence[Path], output: Path, attrs: dict[str, object],
                  dtype: str, order: Sequence[str]) -> None:
    """Concatenate finished shard banks (rank order) into `output`, streaming by blocks."""
    with BankWriter(output, attrs=attrs, dtype=dtype) as writer:
        for name in order:
            for path in shards:
                with read_bank(path) as bank:
                    if name not in bank:
                        continue
                    s = bank[name]
                    paths = s.read_paths()
                    for start, block in s.iter_features():
                        stop = start + len(block)
                        views = None if s.viewids is None else s.viewids[start:stop]
                        writer.append(name, block, s.pids[start:stop], s.camids[start:stop],
                                      paths[start:stop], views)
    for path in shards:
        path.unlink()


def extract_bank(opts: ExtractOptions) -> ExtractResult:
    """Run `opts.checkpoint` (a run directory) or `opts.onnx` over the images into a bank.

    An existing output is reused when it is complete for this model and these images and
    otherwise replaced only with `overwrite` (or `replace_stale`); the output is locked while
    it is written.
    """
    from reidcli.runtime.rundir import CONFIG_NAME, WEIGHTS_NAME

    if opts.batch_size < 1 or opts.checkpoint_every < 1:
        raise ReidError("--batch-size and the checkpoint interval must be positive")
    output = Path(opts.output)
    if opts.onnx is not None:
        inputs = [Path(opts.onnx)]
    elif opts.checkpoint is not None:
        inputs = [Path(opts.checkpoint) / WEIGHTS_NAME, Path(opts.checkpoint) / CONFIG_NAME]
    else:
        inputs = []
    claim = Output(output, "`reid extract`", inputs=inputs,
                   overwrite=opts.overwrite or opts.replace_stale)
    ctx = ddp.init_distributed(device_type(opts.device))
    try:
        with claim_output(claim, lock=ctx.is_main):
            return _extract(opts, output, claim, ctx)
    finally:
        ddp.shutdown(ctx)


def bank_bytes(rows: int, dim: int, dtype: str, paths: int) -> int:
    """About how large a bank of `rows` features of `dim` values will be (`paths`: the
    total length of the image paths)."""
    return rows * (dim * np.dtype(dtype).itemsize + 3 * 8 + 16) + paths + 2**16


def _extract(opts: ExtractOptions, output: Path, claim: Output,
             ctx: ddp.DistContext) -> ExtractResult:
    device = resolve_device(opts.device, ctx.local_rank)
    dataset_desc, splits = gather_records(opts)
    backend = load_backend(opts.checkpoint, opts.onnx, device, opts.device, opts.amp, opts.flip)
    provenance: dict[str, object] = {**backend.provenance, "dataset": dataset_desc}
    rows = {name: len(recs) for name, recs in splits.items()}
    cam_offset = camera_offset(opts, backend.sources)
    # The generic check again, now that "ours" can be told: the same model and images.
    check_output(dataclasses.replace(
        claim, made_by="`reid extract` with this model and these images",
        ours=lambda p: _matches(p, provenance, rows)))
    if output.exists() and not opts.overwrite and _matches(output, provenance, rows):
        log.info("%s is complete for this model and these images; nothing to do", output)
        remove_partial(output)  # a kill between the final rename and the clean-up
        return ExtractResult(output, rows, skipped=True)
    target = output if not ctx.enabled else output.with_name(
        f"{output.stem}.rank{ctx.rank}{output.suffix}")
    partial = partial_path(target)  # rows an interrupted run committed need no new space
    done = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file()) \
        if partial.is_dir() else 0
    # Twice the bank: the committed chunks and the final file exist together at the end.
    check_free_space(output, 2 * bank_bytes(
        sum(rows.values()), backend.feature_dim, opts.dtype,
        sum(len(r.path) for recs in splits.values() for r in recs)) - done)
    start = time.perf_counter()
    progress = stream_progress(enabled=opts.progress and ctx.is_main)
    with progress, BankWriter(target, attrs=provenance, dtype=opts.dtype, resume=True,
                              keep_partial=True) as writer:
        for name, records in splits.items():
            lo, hi = shard(len(records), ctx.rank, ctx.world_size)
            _write_split(writer, name, records[lo:hi], backend.extractor,
                         backend.transform, opts, progress, cam_offset)
    seconds = time.perf_counter() - start
    if ctx.enabled:
        ddp.barrier(ctx)
        if ctx.is_main:
            shards = [output.with_name(f"{output.stem}.rank{r}{output.suffix}")
                      for r in range(ctx.world_size)]
            _merge_shards(shards, output, provenance, opts.dtype, list(splits))
        ddp.barrier(ctx)
    return ExtractResult(output, rows, seconds=seconds)

