"""`reid extract`: images -> HDF5 feature bank."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import amp_option, batch_size_option, device_option, workers_option
from reidcli.inference.extract import ExtractOptions, extract_bank
from reidcli.utils.logging import console


def extract(
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="Run directory of "
                                           "`reid finetune` or `reid pretrain` (model.json + "
                                           "model.safetensors)."),
    onnx: Path | None = typer.Option(None, "--onnx", help="Instead of -c: a graph written by "
                                     "`reid export`, run by onnxruntime."),
    output: Path = typer.Option(..., "--output", "-o", help="Feature bank to write (.h5)."),
    data: str | None = typer.Option(None, "--data", help="Dataset NAME or NAME:PATH."),
    data_root: str | None = typer.Option(None, "--data-root",
                                         help="Where NAME is looked up ($REID_DATA_ROOT, ./data)."),
    splits: str = typer.Option("query,gallery", "--splits",
                               help="Comma-separated splits of --data to extract."),
    data_option: list[str] | None = typer.Option(
        None, "--data-option", "-O", metavar="KEY=VALUE",
        help="Dataset option, repeatable (e.g. the `folder` dataset's pattern=REGEX)."),
    images: Path | None = typer.Option(None, "--images", help="A plain folder of images "
                                       "(recursive) instead of --data; written as one split."),
    images_split: str = typer.Option("images", "--split-name",
                                     help="Split name for --images."),
    cam_regex: str | None = typer.Option(None, "--cam-regex", help="With --images: regex with "
                                         "a named group `cam` (1-based camera number) searched "
                                         "in file names. Without it cameras are unknown and SIE "
                                         "uses the mean camera embedding."),
    batch_size: Annotated[int, batch_size_option()] = 128,
    workers: Annotated[int, workers_option()] = 4,
    flip: bool = typer.Option(False, "--flip/--no-flip",
                              help="Average with the mirrored image's feature."),
    amp: Annotated[str, amp_option()] = "auto",
    device: Annotated[str, device_option()] = "auto",
    dtype: str = typer.Option("float32", "--dtype", help="Stored feature type: float32|float16."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing bank made from other inputs."),
) -> None:
    """Run a trained model over dataset splits or an image folder and write a feature bank.

    With --onnx instead of -c, the graph written by `reid export` runs in onnxruntime.

    Re-running with the same model and inputs skips a finished bank and resumes an
    interrupted one. Under `torchrun` each rank extracts a shard; rank 0 merges them.
    """
    opts = ExtractOptions(
        checkpoint=checkpoint, output=output, data=data, data_root=data_root,
        splits=[s.strip() for s in splits.split(",") if s.strip()],
        data_options=tuple(data_option or ()), images=images,
        images_split=images_split, cam_regex=cam_regex, batch_size=batch_size, workers=workers,
        flip=flip, amp=amp, device=device, dtype=dtype, overwrite=overwrite, onnx=onnx,
    )
    result = extract_bank(opts)
    counts = ", ".join(f"{k} {v}" for k, v in result.rows.items())
    if result.skipped:
        console.print(f"{result.path} already holds these features ({counts}); nothing to do.")
    else:
        console.print(f"wrote {result.path} ({counts}; {result.images_per_second:,.0f} img/s)")
