"""benchmarks/gpu_check.py --smoke: the GPU check's code runs end to end on CPU (so the
script a GPU slot depends on cannot rot between slots)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_smoke_runs_every_section(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    proc = _run("--out", str(out), "--smoke", "--work", str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert "failed" not in result
    assert result["command"] == f"python benchmarks/gpu_check.py --out {out} --smoke --work {work}"
    assert result["environment"]["torch"] and result["environment"]["device"] == "cpu"

    for amp in ("bf16", "fp16"):
        ft = result["finetune"][amp]
        assert ft["finite"] and ft["steps"] > 0 and ft["images_per_s"] > 0
        assert ft["step_tflop"] > 0 and 0 <= ft["loader_wait_share"] < 1
        assert ft["mfu"] is None and ft["peak_gib"] is None  # CPU: no peak FLOPs, no GPU
    extract = result["extract"]
    assert extract["images_per_s"] > 0 and extract["forward_images_per_s"] > 0
    for key in ("evaluate_smoke", "rerank_smoke"):
        assert result["retrieval"][key]["max_metric_diff"] == 0.0
    assert set(result["pretrain"]) == {"dino", "dino-mim", "pass"}
    for run in result["pretrain"].values():
        assert run["iterations"] == 2 and run["images_per_s"] > 0
    assert result["cfs"]["projected_hours_4_2M"] > 0
    deploy = result["deploy"]["results"]
    # float32 on the CPU: the fused-attention graph and --portable's standard operators
    assert set(deploy) == {"eager", "onnxruntime", "ort-portable"}
    assert deploy["onnxruntime"]["images_per_s"] > 0

    table = (out / "gpu_check.md").read_text().splitlines()
    assert table[1].startswith("Command: `python benchmarks/gpu_check.py --out ")
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    # finetune x2, extract, pretrain x3, cfs, deploy x3 (eager, fused, portable), retrieval x2
    assert len(rows) == 2 + 1 + 3 + 1 + 3 + 2
    assert (work / "market").is_dir()  # --work is kept; the default scratch folder is not


def test_unknown_section_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run("--out", str(tmp_path), "--smoke", "--only", "finetune,gpu")
    assert proc.returncode == 2 and "unknown sections: gpu" in proc.stderr
