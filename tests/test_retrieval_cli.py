"""`reid evaluate` and `reid rerank` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.retrieval.bank import write_bank
from reidcli.retrieval.evaluate import evaluate_path
from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits

runner = CliRunner()


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "bank.h5"
    spec = SyntheticSpec(40, 240, 20, dim=16, num_cams=3, noise=1.0, seed=0)
    write_bank(path, synthetic_splits(spec), attrs={"dataset": "synthetic"})
    return path


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_to_stdout_is_pure_json(bank) -> None:
    d = _json(["evaluate", str(bank), "--json", "-", "--max-rank", "30"])
    for key in ("mAP", "mINP", "cmc", "rank1", "rank5", "rank10", "num_queries",
                "num_valid_queries", "metric", "rerank"):
        assert key in d
    assert d["metric"] == "cosine" and d["rerank"] is None
    assert len(d["cmc"]) == 30 and d["rank1"] == d["cmc"][0] and d["rank5"] == d["cmc"][4]
    assert 0.0 <= d["mINP"] <= d["mAP"] <= 1.0
    assert d["num_queries"] == 40
    expected = evaluate_path(bank)
    assert d["mAP"] == pytest.approx(expected.mAP)


def test_json_file_per_camera_and_ci(bank, tmp_path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["evaluate", str(bank), "--json", str(out), "--per-camera",
                                 "--ci", "0.9", "--ci-samples", "50", "--metric", "euclidean"])
    assert result.exit_code == 0, result.output
    assert "mAP" in result.stdout  # the table
    d = json.loads(out.read_text())
    assert d["metric"] == "euclidean"
    assert {row["camera"] for row in d["per_camera"]} <= {1, 2, 3}
    assert d["ci"]["level"] == 0.9 and len(d["ci"]["mAP"]) == 2


def test_rerank_file_evaluates_like_evaluate_rerank(bank, tmp_path) -> None:
    dist = tmp_path / "dist.h5"
    result = runner.invoke(app, ["rerank", str(bank), "-o", str(dist), "--k1", "8", "--k2",
                                 "3", "--lambda", "0.2", "--qe", "2", "--dba", "1"])
    assert result.exit_code == 0, result.output
    opts = ["--k1", "8", "--k2", "3", "--lambda", "0.2", "--qe", "2", "--dba", "1"]
    direct = _json(["evaluate", str(bank), "--rerank", *opts, "--json", "-"])
    from_file = _json(["evaluate", str(dist), "--json", "-"])
    assert direct["rerank"] == from_file["rerank"] == {"k1": 8, "k2": 3, "lambda": 0.2}
    assert (from_file["qe"], from_file["dba"]) == (2, 1)
    assert from_file["mAP"] == pytest.approx(direct["mAP"], abs=1e-12)
    assert from_file["cmc"] == pytest.approx(direct["cmc"], abs=1e-12)


def test_errors_are_one_line_with_exit_code_1(bank, tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    for args in (["evaluate", str(bad)], ["evaluate", str(tmp_path / "none.h5")],
                 ["evaluate", str(bank), "--query-split", "train"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "error:" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, ["evaluate", str(bank), "--ci", "2"]).exit_code == 2
    assert runner.invoke(app, ["rerank", str(bank), "-o", str(tmp_path / "x.h5"),
                               "--k1", "0"]).exit_code == 2
    assert not (tmp_path / "x.h5").exists()


def test_distance_file_refuses_feature_options(bank, tmp_path) -> None:
    dist = tmp_path / "d.h5"
    assert runner.invoke(app, ["rerank", str(bank), "-o", str(dist)]).exit_code == 0
    result = runner.invoke(app, ["evaluate", str(dist), "--qe", "3"])
    assert result.exit_code == 1 and "need a feature bank" in result.output
    assert np.isfinite(_json(["evaluate", str(dist), "--json", "-"])["mAP"])
