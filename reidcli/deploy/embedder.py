"""`Embedder`: a trained model as a function from images to feature vectors.

    from reidcli import Embedder
    embedder = Embedder.from_onnx("model.onnx")        # or Embedder.from_run("runs/market")
    feats = embedder.embed(crops)                       # (N, D) float32

Both back ends run the same function (`DeployModule`: resize as `reid extract` does, then the
graph), so an ONNX embedder and a run-directory embedder agree within the export tolerance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reidcli.deploy.pixels import ImageLike, Resizer
from reidcli.errors import ReidError
from reidcli.inference.graph import DeployModule, GraphSpec
from reidcli.utils.checks import at_least

Ids = int | Sequence[int] | np.ndarray | None
Backend = Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], np.ndarray]


class Embedder:
    """Images -> (N, D) float32 features, in batches of `batch_size`."""

    def __init__(self, backend: Backend, spec: GraphSpec, source: str,
                 batch_size: int = 64) -> None:
        at_least(1, ("batch_size", batch_size))
        self.backend = backend
        self.spec = spec
        self.source = source
        self.batch_size = batch_size
        self.resize = Resizer(spec.img_size)

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str = "auto",
                 flip: bool = False, normalize: bool = False,
                 batch_size: int = 64) -> Embedder:
        """The model of a `reid finetune` / `reid pretrain` run directory, run by torch."""
        from reidcli.models.checkpoint import load_model
        from reidcli.runtime.device import resolve_device
        from reidcli.runtime.files import file_sha256
        from reidcli.runtime.rundir import WEIGHTS_NAME

        dev = resolve_device(device)
        model, cfg = load_model(run_dir, num_classes=0, device=dev)
        spec = GraphSpec.for_model(
            cfg, model.feat_dim, flip=flip, normalized=normalize,
            checkpoint_sha256=file_sha256(Path(run_dir) / WEIGHTS_NAME))
        module = DeployModule(model, spec).to(dev).eval()

        def run(pixels: np.ndarray, cams: np.ndarray | None, views: np.ndarray | None
                ) -> np.ndarray:
            def put(a: np.ndarray | None) -> torch.Tensor | None:
                return None if a is None else torch.from_numpy(a).to(dev)

            with torch.inference_mode():
                return module(put(pixels), put(cams), put(views)).float().cpu().numpy()

        return cls(run, spec, str(run_dir), batch_size)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike[str], device: str = "auto",
                  flip: bool = False, batch_size: int = 64, threads: int = 0) -> Embedder:
        """A graph written by `reid export`, run by onnxruntime (CUDA provider when present).

        `flip` averages with the mirrored images for a graph exported without `--flip`."""
        from reidcli.inference.onnx_model import OnnxModel

        model = OnnxModel(path, device=device, threads=threads, flip=flip)
        return cls(model.run, model.spec, str(path), batch_size)

    @property
    def dim(self) -> int:
        return self.spec.feature_dim

    def embed(self, images: Sequence[ImageLike] | ImageLike, camids: Ids = None,
              viewids: Ids = None) -> np.ndarray:
        """(N, D) float32 features of `images` (PIL images, HxWx3 uint8 RGB arrays or paths).

        `camids` / `viewids` (0-based; one for all or one per image; -1 = unknown) matter only
        to SIE models; without them SIE uses the mean camera embedding, as `reid extract`.
        """
        single = isinstance(images, (str, os.PathLike, Image.Image)) or (
            isinstance(images, np.ndarray) and images.ndim == 3)
        items = [images] if single else list(images)  # type: ignore[arg-type]
        n = len(items)
        cams, views = _ids(camids, n, "camids"), _ids(viewids, n, "viewids")
        out = [np.empty((0, self.dim), np.float32)]
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            out.append(self.backend(self.resize(items[lo:hi]),
                                    None if cams is None else cams[lo:hi],
                                    None if views is None else views[lo:hi]))
        return np.concatenate(out).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"Embedder({self.source!r}, {self.spec.model}, {self.dim}-d)"


def _ids(ids: Ids, n: int, what: str) -> np.ndarray | None:
    if ids is None:
        return None
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.size == 1:
        return np.full(n, int(arr[0]), np.int64)
    if arr.size != n:
        raise ReidError(f"{what}: got {arr.size} ids for {n} images (give one or one per image)")
    return arr
