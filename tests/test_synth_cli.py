"""`reid synth market|unlabeled` through typer's test runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reidcli.cli.app import app

runner = CliRunner()


def test_synth_help_lists_both_commands() -> None:
    result = runner.invoke(app, ["synth", "--help"])
    assert result.exit_code == 0
    assert "market" in result.output and "unlabeled" in result.output


def test_market_writes_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = ["synth", "market", str(out), "--ids", "6", "--cams", "2", "--seed", "3",
            "--size", "64x32", "--per-cam", "2", "--occlusion", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "train:" in result.output and "query:" in result.output and str(out) in result.output
    # 3 train ids, each seen by both cameras, 2 images per camera.
    assert len(list((out / "bounding_box_train").glob("*.jpg"))) == 3 * 2 * 2
    # A second run into the same folder needs --overwrite (exit 1, one-line message).
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_market_bad_size_is_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "market", str(tmp_path / "m"), "--size", "big"])
    assert result.exit_code == 2


def test_market_bad_cams_is_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "market", str(tmp_path / "m"), "--cams", "12"])
    assert result.exit_code == 1 and "--cams" in result.output
    assert not (tmp_path / "m").exists()


def test_unlabeled_writes_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "u"
    result = runner.invoke(app, ["synth", "unlabeled", str(out), "--images", "30",
                                 "--target-like", "0.5", "--target-cams", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "target-like: 15" in result.output
    assert (out / "manifest.csv").is_file()
    assert len(list(out.rglob("*.jpg"))) == 30


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-q", "synth", "unlabeled", str(tmp_path / "u"), "--images", "5"])
    assert result.exit_code == 0 and result.output.strip() == ""


def test_negative_seed_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "unlabeled", str(tmp_path / "u"), "--seed", "-1"])
    assert result.exit_code == 1 and "--seed" in result.output


def test_camera_strength_reaches_the_cameras(tmp_path: Path) -> None:
    import json

    out = tmp_path / "m"
    result = runner.invoke(app, ["synth", "market", str(out), "--ids", "4", "--cams", "2",
                                 "--per-cam", "1", "--camera-strength", "2.5"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "synth.json").read_text())["config"]["camera_strength"] == 2.5
