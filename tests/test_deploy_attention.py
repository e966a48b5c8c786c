"""`reid export` writes timm ViT attention as onnxruntime's fused Attention operator, unless
`--portable`; both graphs compute the torch model's features."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _deploy_data import make_run
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.deploy.attention import onnxruntime_attention
from reidcli.deploy.export import ExportOptions, export_onnx
from reidcli.inference.onnx_model import OnnxModel, sidecar_path
from reidcli.models.checkpoint import load_model


def _ops(path: Path) -> collections.Counter:
    return collections.Counter((n.domain or "ai.onnx", n.op_type)
                               for n in onnx.load(str(path)).graph.node)


def _blocks(run: Path) -> int:
    model, _ = load_model(run, num_classes=0)
    return sum(type(m).__name__ == "Attention" for m in model.modules())


@pytest.mark.parametrize("family", ["vit-sie-jpm", "dinov2-reg"])
def test_fused_and_portable_graphs_agree(family: str, tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", family)
    fused = export_onnx(ExportOptions(run, tmp_path / "f.onnx")).spec
    portable = export_onnx(ExportOptions(run, tmp_path / "p.onnx", portable=True)).spec
    ops_f, ops_p = _ops(tmp_path / "f.onnx"), _ops(tmp_path / "p.onnx")
    blocks = _blocks(run)
    assert blocks >= 2  # JPM's extra block and DINOv2's registers are attention blocks too
    assert ops_f[("com.microsoft", "Attention")] == blocks
    assert ("ai.onnx", "Softmax") not in ops_f
    assert {d for d, _ in ops_p} == {"ai.onnx"} and ops_p[("ai.onnx", "Softmax")] == blocks
    assert fused.fused_attention and not portable.fused_attention
    side = json.loads(sidecar_path(tmp_path / "f.onnx").read_text())
    assert side["fused_attention"] is True and "com.microsoft" in side["operators"]
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (5, 3, *fused.img_size), dtype=np.uint8)
    got = OnnxModel(tmp_path / "f.onnx", device="cpu").run(pixels)
    want = OnnxModel(tmp_path / "p.onnx", device="cpu").run(pixels)
    assert np.abs(want).max() > 1e-2
    np.testing.assert_allclose(got, want, atol=2e-5 * float(np.abs(want).max()), rtol=1e-4)


@pytest.mark.parametrize("family", ["swin", "resnet"])
def test_families_without_timm_attention_keep_standard_operators(family: str,
                                                                 tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", family)
    spec = export_onnx(ExportOptions(run, tmp_path / "m.onnx")).spec
    assert not spec.fused_attention
    assert {d for d, _ in _ops(tmp_path / "m.onnx")} == {"ai.onnx"}


def test_fp16_keeps_standard_operators(tmp_path: Path) -> None:
    # onnxruntime's CPU Attention kernel is float32 only.
    run = make_run(tmp_path / "run", "vit-parts")
    spec = export_onnx(ExportOptions(run, tmp_path / "h.onnx", fp16=True)).spec
    assert spec.precision == "float16" and not spec.fused_attention
    assert {d for d, _ in _ops(tmp_path / "h.onnx")} == {"ai.onnx"}


def test_patched_blocks_compute_the_same_and_are_restored(tmp_path: Path) -> None:
    model, _ = load_model(make_run(tmp_path / "run", "vit-parts"), num_classes=0)
    model.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        want = model(x)
        with onnxruntime_attention(model) as n:
            got = model(x)
            assert n == _blocks(tmp_path / "run")
            assert all("forward" in vars(m) for m in model.modules()
                       if type(m).__name__ == "Attention")
    assert not any("forward" in vars(m) for m in model.modules())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # A masked call is not the fused function: it goes to timm's own forward.
    block = next(m for m in model.modules() if type(m).__name__ == "Attention")
    tokens = torch.randn(2, 5, block.qkv.in_features)
    mask = torch.zeros(5, 5, dtype=torch.bool).fill_diagonal_(True)
    with torch.no_grad():
        want = block(tokens, attn_mask=mask)
        with onnxruntime_attention(model):
            got = block(tokens, attn_mask=mask)
            unmasked = block(tokens)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(unmasked, want, atol=1e-3)


def test_cli_portable(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "vit-parts")
    res = CliRunner().invoke(app, ["export", "-c", str(run), "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0 and "onnxruntime fused attention" in res.output, res.output
    res = CliRunner().invoke(app, ["export", "-c", str(run), "-o", str(tmp_path / "p.onnx"),
                                   "--portable"])
    assert res.exit_code == 0 and "fused" not in res.output, res.output
    assert {d for d, _ in _ops(tmp_path / "p.onnx")} == {"ai.onnx"}


def test_sessions_hand_out_parallel_work_in_dynamic_blocks(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "vit-parts")
    export_onnx(ExportOptions(run, tmp_path / "m.onnx"))
    options = OnnxModel(tmp_path / "m.onnx", device="cpu").session.get_session_options()
    assert options.get_session_config_entry("session.dynamic_block_base") == "4"
