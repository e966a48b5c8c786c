"""What `reid extract` runs: a run directory's model in torch, or an exported ONNX graph.

Either way a `Backend` bundles the extractor (batches -> (B, D) float32 features), the image
transform feeding it (normalised floats for torch; uint8 pixels for a graph, which normalises
itself) and the provenance recorded in the bank.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from reidcli.data.joint import Source
from reidcli.errors import ReidError
from reidcli.inference.features import FeatureExtractor
from reidcli.runtime.device import amp_dtype
from reidcli.runtime.files import file_sha256


@dataclass
class Backend:
    extractor: Callable[..., torch.Tensor]
    """(images, camids, viewids) -> (B, D) float32 features; has a `.device`."""
    transform: Callable[[Image.Image], torch.Tensor]
    provenance: dict[str, object]
    feature_dim: int
    inputs: list[Path]
    """The files the features come from (an output must never replace one of them)."""
    sources: tuple[Source, ...] = ()
    """A joint model's datasets with their camera ranges, when it has camera SIE (torch run
    directories only)."""


def load_backend(checkpoint: str | os.PathLike[str] | None, onnx: str | os.PathLike[str] | None,
                 device: torch.device, device_option: str = "auto", amp: str = "auto",
                 flip: bool = False) -> Backend:
    """The run directory `checkpoint` in torch, or the graph `onnx` in onnxruntime."""
    if (checkpoint is None) == (onnx is None):
        raise ReidError("give exactly one of --checkpoint RUN_DIR and --onnx MODEL.onnx")
    if onnx is not None:
        from reidcli.data.transforms import build_resize_transform
        from reidcli.inference.onnx_model import OnnxFeatureExtractor, OnnxModel, ort_device

        graph = OnnxModel(onnx, device=ort_device(device, device_option), flip=flip)
        return Backend(OnnxFeatureExtractor(graph),
                       build_resize_transform(graph.spec.img_size),
                       {"model": graph.spec.model, "checkpoint": str(Path(onnx).resolve()),
                        "checkpoint_sha256": file_sha256(Path(onnx)),
                        "normalized": graph.spec.normalized,
                        "flip": graph.flip},
                       graph.spec.feature_dim, [Path(onnx)])
    from reidcli.data.transforms import build_test_transform
    from reidcli.models.checkpoint import load_model
    from reidcli.runtime.rundir import CONFIG_NAME, WEIGHTS_NAME

    model, cfg = load_model(checkpoint, num_classes=0, device=device)  # type: ignore[arg-type]
    return Backend(FeatureExtractor(model, device, amp_dtype(amp, device), flip),
                   build_test_transform(cfg.img_size, cfg.mean, cfg.std),
                   {"model": cfg.backbone, "checkpoint": str(Path(checkpoint).resolve()),  # type: ignore[arg-type]
                    "checkpoint_sha256": file_sha256(Path(checkpoint) / WEIGHTS_NAME),  # type: ignore[arg-type]
                    "normalized": False, "flip": bool(flip)},
                   model.feat_dim, [Path(checkpoint) / WEIGHTS_NAME,  # type: ignore[arg-type]
                                    Path(checkpoint) / CONFIG_NAME],  # type: ignore[arg-type]
                   tuple(Source.from_dict(s) for s in cfg.sources) if cfg.sie_camera else ())
