"""The deployable graph: a trained `ReidModel` with its input handling folded in.

`DeployModule` is what `reid export` traces to ONNX and what `Embedder.from_run` runs in
torch, so both back ends compute one function: raw pixels (uint8 0..255 or float 0..1, NCHW
or NHWC, RGB, already resized to the model's size) -> scale and normalise -> the model's test
feature (`reidcli.inference.features.test_features`: JPM branches concatenated, optional flip
averaging) -> optionally L2-normalised. `GraphSpec` describes that function; it is written
as a sidecar JSON next to the .onnx and inside the .onnx's metadata.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from reidcli.errors import ReidError
from reidcli.inference.features import test_features
from reidcli.models.config import ModelConfig

GRAPH_FORMAT = "reidcli-onnx"
GRAPH_VERSION = 1
LAYOUTS = ("nchw", "nhwc")
INPUT_DTYPES = ("uint8", "float32")
PRECISIONS = ("float32", "float16")
UNKNOWN_ID = -1
"""Camera/view id meaning "unknown" (the mean SIE embedding), as in `reid extract`."""
IMAGES, CAMIDS, VIEWIDS, FEATURES = "images", "camids", "viewids", "features"


@dataclass
class GraphSpec:
    """Everything a consumer of the exported graph needs to feed it and read its output."""

    model: str
    img_size: tuple[int, int]
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_dtype: str = "uint8"
    layout: str = "nchw"
    flip: bool = False
    normalized: bool = False
    precision: str = "float32"
    sie_camera: bool = False
    sie_view: bool = False
    num_cams: int = 1
    num_views: int = 1
    opset: int = 17
    fused_attention: bool = False
    """Attention blocks are onnxruntime's `com.microsoft.Attention` (runs in onnxruntime only)."""
    checkpoint_sha256: str = ""
    verification: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.img_size = (int(self.img_size[0]), int(self.img_size[1]))
        self.mean = tuple(float(v) for v in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in self.std)  # type: ignore[assignment]
        for name, value, allowed in (("layout", self.layout, LAYOUTS),
                                     ("input dtype", self.input_dtype, INPUT_DTYPES),
                                     ("precision", self.precision, PRECISIONS)):
            if value not in allowed:
                raise ReidError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")

    @property
    def id_inputs(self) -> list[str]:
        """Optional id inputs of the graph (SIE); leaving one out means "unknown"."""
        return [name for name, on in ((CAMIDS, self.sie_camera), (VIEWIDS, self.sie_view)) if on]

    @property
    def input_shape(self) -> list[int | str]:
        h, w = self.img_size
        return ["batch", 3, h, w] if self.layout == "nchw" else ["batch", h, w, 3]

    def to_dict(self) -> dict[str, Any]:
        """The sidecar JSON: the flat fields plus a readable description of the graph's I/O."""
        d = dataclasses.asdict(self)
        d["img_size"], d["mean"], d["std"] = list(self.img_size), list(self.mean), list(self.std)
        d["format"], d["version"] = GRAPH_FORMAT, GRAPH_VERSION
        scale = "0..255" if self.input_dtype == "uint8" else "0..1"
        d["inputs"] = {
            IMAGES: {"dtype": self.input_dtype, "shape": self.input_shape, "channels": "RGB",
                     "range": scale, "normalization": "in graph: (x / range_max - mean) / std"},
            **{name: {"dtype": "int64", "shape": ["batch"], "optional": True,
                      "absent_or_-1": "unknown (mean SIE embedding)"} for name in self.id_inputs},
        }
        d["operators"] = (f"ONNX opset {self.opset} + com.microsoft Attention (onnxruntime only)"
                          if self.fused_attention else f"ONNX opset {self.opset}")
        d["outputs"] = {FEATURES: {"dtype": "float32", "shape": ["batch", self.feature_dim],
                                   "l2_normalized": self.normalized}}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphSpec:
        if data.get("format") != GRAPH_FORMAT:
            raise ReidError(f"not a reidcli ONNX description (format {data.get('format')!r})")
        if int(data.get("version", 0)) != GRAPH_VERSION:
            raise ReidError(f"reidcli ONNX description version {data.get('version')} is not "
                            f"supported (expected {GRAPH_VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def for_model(cls, cfg: ModelConfig, feature_dim: int, **kw: Any) -> GraphSpec:
        return cls(model=cfg.backbone, img_size=cfg.img_size, feature_dim=feature_dim,
                   mean=cfg.mean, std=cfg.std, sie_camera=cfg.sie_camera,  # type: ignore[arg-type]
                   sie_view=cfg.sie_view, num_cams=cfg.num_cams, num_views=cfg.num_views, **kw)


class DeployModule(nn.Module):
    """Raw pixels (+ optional camera/view ids) -> test features, as described by `spec`.

    Ids may have one entry (broadcast over the batch) or one per image; -1 means unknown.
    """

    def __init__(self, model: nn.Module, spec: GraphSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        top = 255.0 if spec.input_dtype == "uint8" else 1.0
        std = torch.tensor(spec.std).view(1, 3, 1, 1)
        mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        # (x / top - mean) / std as one multiply-add.
        self.register_buffer("scale", 1.0 / (top * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)
        self.half_model = spec.precision == "float16"

    def forward(
        self,
        images: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2) if self.spec.layout == "nhwc" else images
        x = x.float() * self.scale + self.shift
        if self.half_model:
            x = x.half()
        b = x.shape[0]
        cam = self._ids(camids, b) if self.spec.sie_camera else None
        view = self._ids(viewids, b) if self.spec.sie_view else None
        out = test_features(self.model, x, cam, view, self.spec.flip)
        if self.spec.normalized:
            out = nn.functional.normalize(out, dim=1)
        return out

    def _ids(self, ids: torch.Tensor | None, batch: int) -> torch.Tensor:
        device = self.scale.device
        if ids is None:
            ids = torch.full((1,), UNKNOWN_ID, dtype=torch.long, device=device)
        return ids.to(device=device, dtype=torch.long).reshape(-1).expand(batch)


def graph_input(spec: GraphSpec, pixels: np.ndarray) -> np.ndarray:
    """uint8 (B, 3, H, W) RGB pixels in the dtype and layout the graph takes."""
    x = pixels.transpose(0, 2, 3, 1) if spec.layout == "nhwc" else pixels
    x = np.ascontiguousarray(x)
    return x.astype(np.float32) / 255.0 if spec.input_dtype == "float32" else x
