"""`reid export`: a run directory -> a verified ONNX graph + its sidecar JSON.

The graph is `DeployModule` traced with torch's TorchScript-based ONNX exporter
(`torch.onnx.export(..., dynamo=False)`): it exports every backbone family in about a second,
where the dynamo exporter takes tens of seconds here. Before anything is written, the graph
runs in onnxruntime on a batch (real images if given, else deterministic random pixels; SIE
models with and without camera ids) and must match the torch model within `atol`.

In float32, timm's ViT attention blocks are written as onnxruntime's fused `Attention`
operator (`reidcli.deploy.attention`) unless `portable` asks for standard operators only.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcli.deploy.attention import DOMAIN, DOMAIN_VERSION, onnxruntime_attention
from reidcli.deploy.pixels import Resizer
from reidcli.errors import ReidError
from reidcli.inference.graph import (
    CAMIDS,
    FEATURES,
    IMAGES,
    UNKNOWN_ID,
    VIEWIDS,
    DeployModule,
    GraphSpec,
    graph_input,
)
from reidcli.inference.onnx_model import SPEC_KEY, providers_for, require, session, sidecar_path
from reidcli.utils.io import atomic_path, atomic_write_text
from reidcli.utils.outputs import Output, claim_output

log = logging.getLogger(__name__)

DEFAULT_ATOL = {"float32": 1e-4, "float16": 5e-2}
OPSET = 17


@dataclass
class ExportOptions:
    checkpoint: Path
    output: Path
    flip: bool = False
    fp16: bool = False
    atol: float | None = None
    """Largest allowed |onnxruntime - torch| feature difference; None = 1e-4 (fp16: 5e-2)."""
    input_dtype: str = "uint8"
    layout: str = "nchw"
    normalize: bool = False
    data: str | None = None
    data_root: str | None = None
    data_options: tuple[str, ...] = ()
    images: Path | None = None
    verify_batch: int = 8
    device: str = "cpu"
    """Where the graph is verified: cpu, cuda (fp16 needs a CUDA provider) or auto."""
    overwrite: bool = False
    """Replace an existing file that `reid export` did not write (one without a sidecar)."""
    portable: bool = False
    """Standard ONNX operators only (no onnxruntime `com.microsoft` fused attention)."""


@dataclass
class Verification:
    max_abs_diff: float
    min_cosine: float
    atol: float
    batch: int
    source: str
    checks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"max_abs_diff": self.max_abs_diff, "min_cosine": self.min_cosine,
                "atol": self.atol, "batch": self.batch, "images": self.source,
                "checks": self.checks}


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    spec: GraphSpec
    verification: Verification


@contextlib.contextmanager
def _exact_roll() -> Iterator[None]:
    """The TorchScript exporter's `roll` slices by the raw shift, which is wrong when the shift
    exceeds the dimension (Swin's shifted windows on a map narrower than the shift, e.g. the
    last stage of a small input). Export it as a gather at (i - shift) mod size instead."""
    from torch.onnx import (
        register_custom_op_symbolic,
        symbolic_helper,
        unregister_custom_op_symbolic,
    )

    def const(g, value: int):
        return g.op("Constant", value_t=torch.tensor(value, dtype=torch.long))

    @symbolic_helper.parse_args("v", "is", "is")
    def roll(g, x, shifts, dims):
        for shift, dim in zip(shifts, dims, strict=True):
            size = g.op("Gather", g.op("Shape", x), const(g, dim), axis_i=0)
            index = g.op("Range", const(g, 0), size, const(g, 1))
            # Integer Mod with fmod=0 takes the divisor's sign: a proper modulo.
            index = g.op("Mod", g.op("Sub", index, const(g, shift)), size, fmod_i=0)
            x = g.op("Gather", x, index, axis_i=dim)
        return x

    register_custom_op_symbolic("aten::roll", roll, OPSET)
    try:
        yield
    finally:
        unregister_custom_op_symbolic("aten::roll", OPSET)


class _Positional(torch.nn.Module):
    """The graph's inputs in order (images, then whichever id inputs the model takes)."""

    def __init__(self, module: DeployModule, names: list[str]) -> None:
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, images: torch.Tensor, *ids: torch.Tensor) -> torch.Tensor:
        return self.module(images, **dict(zip(self.names, ids, strict=True)))


def _verification_pixels(opts: ExportOptions, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    if opts.data is None and opts.images is None:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (opts.verify_batch, 3, *size), dtype=np.uint8), "random"
    from reidcli.inference.extract import ExtractOptions, gather_records

    desc, splits = gather_records(ExtractOptions(
        checkpoint=opts.checkpoint, output=opts.output, data=opts.data,
        data_root=opts.data_root, data_options=opts.data_options, images=opts.images,
        splits=("query", "gallery")))
    records = [r for recs in splits.values() for r in recs][: opts.verify_batch]
    if not records:
        raise ReidError(f"{desc} holds no images to verify the export with")
    return Resizer(size)([r.path for r in records]), desc


def _compare(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    diff = float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0
    num = (got.astype(np.float64) * want).sum(1)
    den = np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
    cos = float(np.min(num / np.maximum(den, 1e-12))) if got.size else 1.0
    return diff, cos


def _finish_graph(tmp: Path, spec: GraphSpec) -> Any:
    """Load the traced graph and give the id inputs their default, -1 (unknown)."""
    onnx = require("onnx")
    from onnx import numpy_helper

    proto = onnx.load(str(tmp))
    for name in spec.id_inputs:
        # An initializer named like an input is the input's default value: callers may leave
        # the input out (onnxruntime lists it under get_overridable_initializers()).
        proto.graph.initializer.append(
            numpy_helper.from_array(np.array([UNKNOWN_ID], np.int64), name))
    # The tracer may leave the feature axis symbolic (after L2 normalisation): state it.
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    dims[1].ClearField("dim_param")
    dims[1].dim_value = spec.feature_dim
    proto.producer_name = "reidcli"
    return proto


def _set_spec(proto: Any, spec: GraphSpec) -> None:
    for prop in [p for p in proto.metadata_props if p.key == SPEC_KEY]:
        proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()


def _verify(proto: Any, spec: GraphSpec, reference: DeployModule, pixels: np.ndarray,
            source: str, atol: float, device: str) -> Verification:
    sess = session(proto.SerializeToString(), providers_for(device))
    x = graph_input(spec, pixels)
    b = len(x)
    cases: list[tuple[str, dict[str, np.ndarray]]] = [("no ids", {})]
    if spec.id_inputs:
        ids = {CAMIDS: np.arange(b) % spec.num_cams, VIEWIDS: np.arange(b) % spec.num_views}
        cases.append(("ids", {n: ids[n] for n in spec.id_inputs}))
    worst, cos_min, checks = 0.0, 1.0, []
    for label, ids in cases:
        got = sess.run([FEATURES], {IMAGES: x, **ids})[0]
        with torch.no_grad():
            want = reference(torch.from_numpy(x),
                             **{k: torch.from_numpy(v) for k, v in ids.items()}).numpy()
        diff, cos = _compare(got, want.astype(np.float64))
        checks.append(f"{label}: max |diff| {diff:.2e}, min cosine {cos:.6f}")
        worst, cos_min = max(worst, diff), min(cos_min, cos)
    return Verification(worst, cos_min, atol, b, source, checks)


def export_onnx(opts: ExportOptions) -> ExportResult:
    """Export, verify with onnxruntime, then write `opts.output` and its sidecar atomically."""
    require("onnx")
    require("onnxruntime")
    from reidcli.models.checkpoint import load_model
    from reidcli.runtime.files import file_sha256
    from reidcli.runtime.rundir import CONFIG_NAME, WEIGHTS_NAME

    if opts.verify_batch < 1:
        raise ReidError("the verification batch must hold at least one image")
    precision = "float16" if opts.fp16 else "float32"
    atol = DEFAULT_ATOL[precision] if opts.atol is None else float(opts.atol)
    model, cfg = load_model(opts.checkpoint, num_classes=0, device="cpu")
    spec = GraphSpec.for_model(
        cfg, model.feat_dim, input_dtype=opts.input_dtype, layout=opts.layout, flip=opts.flip,
        normalized=opts.normalize, precision=precision, opset=OPSET,
        checkpoint_sha256=file_sha256(Path(opts.checkpoint) / WEIGHTS_NAME))
    reference = DeployModule(model, dataclasses.replace(spec, precision="float32"))
    reference.eval()
    pixels, source = _verification_pixels(opts, spec.img_size)
    traced = DeployModule(_half_copy(model) if opts.fp16 else model, spec).eval()
    # Traced at batch 2 whatever the verification batch: a batch of 1 invites the tracer to
    # treat the batch size as a constant.
    example = torch.from_numpy(graph_input(spec, pixels[[0, -1]]))
    ids = tuple(torch.zeros(len(example), dtype=torch.long) for _ in spec.id_inputs)
    names = [IMAGES, *spec.id_inputs]
    axes = {IMAGES: {0: "batch"}, FEATURES: {0: "batch"},
            **{n: {0: "ids"} for n in spec.id_inputs}}
    output = Path(opts.output)
    ckpt = Path(opts.checkpoint)
    claim = Output(output, "`reid export`", ours=lambda p: sidecar_path(p).is_file(),
                   inputs=[ckpt / WEIGHTS_NAME, ckpt / CONFIG_NAME], overwrite=opts.overwrite)
    # onnxruntime's CPU Attention kernel is float32 only; half graphs keep standard operators.
    fuse = not (opts.portable or opts.fp16)
    with claim_output(claim), atomic_path(output, suffix=".onnx.tmp") as tmp:
        with (_exact_roll(), warnings.catch_warnings(), torch.no_grad(),
              onnxruntime_attention(traced) if fuse else contextlib.nullcontext(0) as fused):
            # Tracer warnings about Python ints from shapes concern the static image size.
            warnings.simplefilter("ignore")
            spec.fused_attention = fused > 0
            torch.onnx.export(_Positional(traced, spec.id_inputs).eval(), (example, *ids), str(tmp),
                              input_names=names, output_names=[FEATURES], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False,
                              custom_opsets={DOMAIN: DOMAIN_VERSION} if fused else None)
        proto = _finish_graph(tmp, spec)
        check = _verify(proto, spec, reference, pixels, source, atol, opts.device)
        if not check.max_abs_diff <= atol:
            raise ReidError(
                f"the exported graph differs from the torch model by up to "
                f"{check.max_abs_diff:.2e} (> --atol {atol:g}; min cosine "
                f"{check.min_cosine:.6f}); nothing written")
        spec.verification = check.to_dict()
        _set_spec(proto, spec)
        require("onnx").save(proto, str(tmp))
        atomic_write_text(sidecar_path(output), spec.to_json())
    log.debug("exported %s (%s, %d-d)", output, spec.model, spec.feature_dim)
    return ExportResult(output, sidecar_path(output), spec, check)


def _half_copy(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model).half()
