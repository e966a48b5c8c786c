"""`reid export`: a run directory -> a verified ONNX graph (option parsing only)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from reidcli.cli.common import state
from reidcli.deploy.export import ExportOptions, export_onnx
from reidcli.utils.logging import console


class Layout(StrEnum):
    nchw = "nchw"
    nhwc = "nhwc"


class InputType(StrEnum):
    uint8 = "uint8"
    float32 = "float32"


def export(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c",
                                    help="Run directory (model.json + model.safetensors)."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="ONNX file to write; its description goes to OUTPUT.json."),
    flip: bool = typer.Option(False, "--flip/--no-flip",
                              help="Fold flip averaging into the graph (as `extract --flip`)."),
    fp16: bool = typer.Option(False, "--fp16", help="Half-precision weights and compute."),
    atol: float | None = typer.Option(
        None, "--atol", min=0.0, help="Largest allowed |onnxruntime - torch| feature "
        "difference at verification (default 1e-4; with --fp16 5e-2)."),
    input_type: InputType = typer.Option(InputType.uint8, "--input",
                                         help="uint8 pixels 0..255 or float32 0..1."),
    layout: Layout = typer.Option(Layout.nchw, "--layout",
                                  help="nchw (B,3,H,W) or nhwc (B,H,W,3), RGB either way."),
    normalize: bool = typer.Option(False, "--normalize/--no-normalize",
                                   help="L2-normalise the output features in the graph."),
    data: str | None = typer.Option(None, "--data", help="Verify on this dataset's images "
                                    "(NAME or NAME:PATH) instead of random pixels."),
    data_root: str | None = typer.Option(None, "--data-root", help="Where --data NAME is."),
    images: Path | None = typer.Option(None, "--images",
                                       help="Verify on images of this folder."),
    verify_batch: int = typer.Option(8, "--verify-batch", min=1,
                                     help="Images run through both models at verification."),
    device: str = typer.Option("cpu", "--device", help="onnxruntime device for verification: "
                               "cpu, cuda or auto."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an existing file that reid export did not write."),
    portable: bool = typer.Option(
        False, "--portable", help="Standard ONNX operators only (for TensorRT, OpenVINO, ...); "
        "by default ViT attention is onnxruntime's fused Attention operator."),
) -> None:
    """Export the model as `reid extract` runs it to ONNX, verified with onnxruntime.

    The graph takes images already resized to the model's size (RGB) and does the scaling and
    normalisation itself; batch size is dynamic. SIE models take optional `camids` (and
    `viewids`): leave them out, or pass -1, for an unknown camera. Nothing is written if the
    graph differs from the torch model by more than --atol.
    """
    result = export_onnx(ExportOptions(
        checkpoint=checkpoint, output=output, flip=flip, fp16=fp16, atol=atol,
        input_dtype=input_type.value, layout=layout.value, normalize=normalize, data=data,
        data_root=data_root, images=images, verify_batch=verify_batch, device=device,
        overwrite=overwrite, portable=portable))
    if state.quiet:
        return
    spec, check = result.spec, result.verification
    ids = f"; optional inputs {', '.join(spec.id_inputs)}" if spec.id_inputs else ""
    fused = "; onnxruntime fused attention" if spec.fused_attention else ""
    console.print(f"verified on {check.batch} {check.source} images: max |diff| "
                  f"{check.max_abs_diff:.2e} (atol {check.atol:g}), min cosine "
                  f"{check.min_cosine:.6f}", highlight=False)
    console.print(f"wrote {result.path} ({spec.model}, {spec.input_dtype} {spec.layout} "
                  f"{spec.img_size[0]}x{spec.img_size[1]} -> {spec.feature_dim}-d "
                  f"{spec.precision}{ids}{fused}) and {result.sidecar.name}", highlight=False)
