"""`reid export`: the ONNX graph computes `reid extract`'s features for every backbone family."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _deploy_data import FAMILIES, make_run
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.deploy.export import ExportOptions, export_onnx
from reidcli.errors import CheckpointError, ReidError
from reidcli.inference.features import FeatureExtractor
from reidcli.inference.graph import CAMIDS
from reidcli.inference.onnx_model import OnnxModel, read_spec, sidecar_path
from reidcli.models.checkpoint import load_model


def _reference(run: Path, pixels: np.ndarray, cams=None, flip: bool = False) -> np.ndarray:
    """What `reid extract` computes: scale to 0..1, normalise, model (+ flip) in torch."""
    model, cfg = load_model(run, num_classes=0)
    mean = torch.tensor(cfg.mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std).view(1, 3, 1, 1)
    x = (torch.from_numpy(pixels).float() / 255 - mean) / std
    cam = None if cams is None else torch.as_tensor(cams)
    return FeatureExtractor(model, torch.device("cpu"), flip=flip)(x, cam).numpy()


def _pixels(run: Path, n: int = 3, seed: int = 1) -> np.ndarray:
    _, cfg = load_model(run, num_classes=0)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, *cfg.img_size), dtype=np.uint8)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    scale = float(np.abs(want).max())
    assert scale > 1e-2  # features that are all ~0 would make the comparison vacuous
    np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, scale), rtol=1e-4)


@pytest.mark.parametrize("family,flip", [(f, False) for f in FAMILIES] +
                         [("vit-sie-jpm", True), ("swin", True)])
def test_onnxruntime_equals_torch(family: str, flip: bool, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", family)
    result = export_onnx(ExportOptions(run, tmp_path / "m.onnx", flip=flip))
    assert result.verification.max_abs_diff <= 1e-4
    graph = OnnxModel(tmp_path / "m.onnx", device="cpu")
    pixels = _pixels(run)  # batch 3: the graph was traced with 2, so the batch axis is dynamic
    _close(graph.run(pixels), _reference(run, pixels, [-1, -1, -1] if graph.spec.id_inputs
                                         else None, flip))
    if graph.spec.id_inputs:
        cams = np.array([0, 2, 1])
        with_cams = graph.run(pixels, cams)
        _close(with_cams, _reference(run, pixels, cams, flip))
        assert not np.allclose(with_cams, graph.run(pixels))  # the cameras do matter


def test_sidecar_describes_the_graph(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "vit-sie-jpm")
    out = tmp_path / "m.onnx"
    export_onnx(ExportOptions(run, out, layout="nhwc", input_dtype="float32", normalize=True))
    side = json.loads(sidecar_path(out).read_text())
    model, cfg = load_model(run, num_classes=0)
    assert side["format"] == "reidcli-onnx" and side["model"] == "vit-tiny-test"
    assert side["img_size"] == [64, 32] and side["feature_dim"] == model.feat_dim == 5 * 64
    assert side["mean"] == list(cfg.mean) and side["std"] == list(cfg.std)
    assert side["normalized"] is True and side["sie_camera"] is True and side["num_cams"] == 3
    assert side["inputs"]["images"]["shape"] == ["batch", 64, 32, 3]
    proto = onnx.load(str(out))
    inputs = {i.name: i for i in proto.graph.input}
    images = inputs["images"].type.tensor_type
    assert images.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in images.shape.dim] == ["batch", 64, 32, 3]
    assert CAMIDS in inputs and CAMIDS in {i.name for i in proto.graph.initializer}
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out_dims] == ["batch", 5 * 64]
    assert read_spec(out).to_dict() == side  # the .onnx carries the same description
    graph = OnnxModel(out, device="cpu")
    assert [i.name for i in graph.session.get_inputs()] == ["images"]  # camids optional
    feats = graph.run(_pixels(run))
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_fp16_export_is_close(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "resnet")
    result = export_onnx(ExportOptions(run, tmp_path / "h.onnx", fp16=True))
    assert result.spec.precision == "float16" and result.verification.atol == 5e-2
    pixels = _pixels(run)
    got = OnnxModel(tmp_path / "h.onnx", device="cpu").run(pixels)
    want = _reference(run, pixels)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert got.dtype == np.float32 and cos.min() > 0.999


def test_beyond_tolerance_writes_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "vit-parts")
    out = tmp_path / "m.onnx"
    with pytest.raises(ReidError, match="nothing written"):
        export_onnx(ExportOptions(run, out, atol=1e-12))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_errors_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path / "run", "resnet")
    (run / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors not found"):
        export_onnx(ExportOptions(run, tmp_path / "m.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf model")
    with pytest.raises(ReidError, match="bad.onnx is not a model onnxruntime can load"):
        OnnxModel(bad)
    foreign = tmp_path / "foreign.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(torch.nn.Linear(2, 2).eval(), (torch.zeros(1, 2),), str(foreign),
                          dynamo=False)
    with pytest.raises(ReidError, match="not exported by `reid export`"):
        OnnxModel(foreign)
    import importlib

    real = importlib.import_module

    def no_onnxruntime(name: str, *a, **kw):
        if name == "onnxruntime":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib, "import_module", no_onnxruntime)
    with pytest.raises(ReidError, match=r"pip install 'reidcli\[export\]'"):
        export_onnx(ExportOptions(run, tmp_path / "m.onnx"))


def test_cli_exports_and_reports(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "vit-sie-jpm")
    res = CliRunner().invoke(app, ["export", "-c", str(run), "-o", str(tmp_path / "m.onnx"),
                                   "--flip"])
    assert res.exit_code == 0, res.output
    assert "verified on 8 random images" in res.output and "optional inputs camids" in res.output
    assert read_spec(tmp_path / "m.onnx").flip is True
    res = CliRunner().invoke(app, ["export", "-c", str(tmp_path), "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code == 1 and "not a reidcli run directory" in " ".join(res.output.split())


def test_verifies_on_real_images(tmp_path: Path) -> None:
    from _deploy_data import write_gallery

    run = make_run(tmp_path / "run", "resnet")
    write_gallery(tmp_path / "imgs", ids=2, per_id=2)
    result = export_onnx(ExportOptions(run, tmp_path / "m.onnx", images=tmp_path / "imgs",
                                       verify_batch=3))
    check = read_spec(tmp_path / "m.onnx").verification
    assert check["images"] == str(tmp_path / "imgs") and check["batch"] == 3
    assert result.verification.max_abs_diff == check["max_abs_diff"] <= 1e-4
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReidError):
        export_onnx(ExportOptions(run, tmp_path / "e.onnx", images=tmp_path / "empty"))


def test_export_never_replaces_its_input_or_a_foreign_file(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "vit-parts")
    weights = run / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(ReidError, match="input"):
        export_onnx(ExportOptions(run, weights))
    assert weights.read_bytes() == before
    foreign = tmp_path / "notes.onnx"
    foreign.write_text("mine")
    with pytest.raises(ReidError, match="--overwrite"):
        export_onnx(ExportOptions(run, foreign))
    assert foreign.read_text() == "mine"
    export_onnx(ExportOptions(run, foreign, overwrite=True))
    assert sidecar_path(foreign).is_file()
    # A graph reid export wrote (it has its sidecar) is replaced without being told.
    export_onnx(ExportOptions(run, foreign, flip=True))
    assert read_spec(foreign).flip
