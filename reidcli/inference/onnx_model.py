"""Running an exported graph with onnxruntime (the optional `reidcli[export]` extra)."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from reidcli.errors import ReidError
from reidcli.inference.graph import CAMIDS, IMAGES, VIEWIDS, GraphSpec, graph_input

EXTRA_HINT = "pip install 'reidcli[export]'"
SPEC_KEY = "reidcli"
"""Metadata key of the .onnx holding the `GraphSpec` JSON (the file describes itself)."""
DYNAMIC_BLOCK_BASE = 4
"""onnxruntime's `session.dynamic_block_base` for every session reidcli opens."""


def require(module: str) -> ModuleType:
    """Import an optional dependency of the export extra, or say in one line how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReidError(f"{module} is not installed; it comes with the export extra: "
                        f"{EXTRA_HINT}") from None


def sidecar_path(onnx_path: str | os.PathLike[str]) -> Path:
    """`model.onnx` -> `model.onnx.json` (never `model.json`, the run directory's config)."""
    p = Path(onnx_path)
    return p.with_name(p.name + ".json")


def read_spec(path: str | os.PathLike[str]) -> GraphSpec:
    """The `GraphSpec` of an exported .onnx (its metadata, else its sidecar JSON)."""
    return spec_of(session(_existing(path), ["CPUExecutionProvider"]), path)


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ReidError(f"ONNX model not found: {path}")
    return path


def spec_of(sess: Any, path: str | os.PathLike[str]) -> GraphSpec:
    """Read through onnxruntime, so running a graph needs onnxruntime only (not `onnx`)."""
    path = Path(path)
    text = sess.get_modelmeta().custom_metadata_map.get(SPEC_KEY)
    if text is None and sidecar_path(path).is_file():
        text = sidecar_path(path).read_text(encoding="utf-8")
    if text is None:
        raise ReidError(f"{path} was not exported by `reid export` (no '{SPEC_KEY}' metadata "
                        f"and no {sidecar_path(path).name}); export it with reidcli")
    try:
        return GraphSpec.from_dict(json.loads(text))
    except (ValueError, TypeError) as err:
        raise ReidError(f"{path}: unreadable reidcli description: {err}") from None


def providers_for(device: str) -> list[Any]:
    """onnxruntime providers for `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`."""
    ort = require("onnxruntime")
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if not device.startswith("cuda"):
        raise ReidError(f"--device must be auto, cpu or cuda[:N] for ONNX models, got "
                        f"{device!r}")
    if not cuda:
        raise ReidError("onnxruntime here has no CUDA provider (install onnxruntime-gpu) "
                        "or pass --device cpu")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def ort_device(device: Any, requested: str) -> str:
    """The onnxruntime device for torch's resolved `device` (cuda:N under torchrun): with
    `--device auto`, the CPU when this onnxruntime has no CUDA provider."""
    if requested == "auto" and device.type == "cuda":
        cuda = "CUDAExecutionProvider" in require("onnxruntime").get_available_providers()
        return str(device) if cuda else "cpu"
    return str(device)


def session(model: str | os.PathLike[str] | bytes, providers: Sequence[Any],
            threads: int = 0) -> Any:
    """An onnxruntime session; quiet about the optional id inputs' default values."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    # The SIE id inputs carry a default (-1 = unknown), which onnxruntime warns about.
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    # Parallel loops handed out in shrinking blocks rather than one equal share per thread:
    # a thread that another process (a DataLoader worker, a shared machine) delays then no
    # longer holds up every operator (`benchmarks/bench_deploy.py`).
    options.add_session_config_entry("session.dynamic_block_base", str(DYNAMIC_BLOCK_BASE))
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=list(providers))
    except Exception as err:  # onnxruntime's Fail / InvalidGraph / InvalidProtobuf
        shown = "the exported graph" if isinstance(model, bytes) else str(model)
        raise ReidError(f"{shown} is not a model onnxruntime can load: "
                        f"{str(err).strip()}") from None


class OnnxModel:
    """An exported graph plus its `GraphSpec`; `run` takes uint8 NCHW batches like torch's
    `DeployModule` input and converts them to whatever input the graph was exported with.

    `flip` on a graph exported without `--flip` runs the mirrored batch as well and averages,
    as `FeatureExtractor` does (a graph exported with `--flip` does it inside).
    """

    def __init__(self, path: str | os.PathLike[str], device: str = "auto",
                 threads: int = 0, flip: bool = False) -> None:
        self.path = _existing(path)
        self.providers = providers_for(device)
        self.session = session(self.path, self.providers, threads)
        self.spec = spec_of(self.session, self.path)
        self.extra_flip = flip and not self.spec.flip

    @property
    def device(self) -> str:
        return "cuda" if self.session.get_providers()[0].startswith("CUDA") else "cpu"

    def feed(self, images: np.ndarray, camids: np.ndarray | None = None,
             viewids: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Input dict for (B, 3, H, W) uint8 RGB images at the model's size."""
        images = np.asarray(images)
        h, w = self.spec.img_size
        if images.ndim != 4 or images.shape[1:] != (3, h, w):
            raise ReidError(f"{self.path.name} takes (B, 3, {h}, {w}) images, got "
                            f"{tuple(images.shape)}")
        feed = {IMAGES: graph_input(self.spec, images.astype(np.uint8, copy=False))}
        for name, ids in ((CAMIDS, camids), (VIEWIDS, viewids)):
            if ids is not None and name in self.spec.id_inputs:
                feed[name] = np.asarray(ids, dtype=np.int64).reshape(-1)
        return feed

    def run(self, images: np.ndarray, camids: np.ndarray | None = None,
            viewids: np.ndarray | None = None) -> np.ndarray:
        """(B, D) float32 features."""
        (out,) = self.session.run(None, self.feed(images, camids, viewids))
        if self.extra_flip:
            (mirrored,) = self.session.run(None, self.feed(images[..., ::-1], camids, viewids))
            out = (out + mirrored) / 2
        return np.asarray(out, dtype=np.float32)

    @property
    def flip(self) -> bool:
        return self.spec.flip or self.extra_flip


class OnnxFeatureExtractor:
    """`FeatureExtractor`'s interface over an `OnnxModel`, for `reid extract --onnx`: takes the
    uint8 batches of `build_resize_transform`."""

    def __init__(self, model: OnnxModel) -> None:
        import torch

        self.model = model
        self.device = torch.device("cpu")  # batches are handed over as host arrays

    def __call__(self, images, camids=None, viewids=None):
        import torch

        x = images.numpy()
        cams = None if camids is None else camids.numpy()
        views = None if viewids is None else viewids.numpy()
        return torch.from_numpy(self.model.run(x, cams, views))
