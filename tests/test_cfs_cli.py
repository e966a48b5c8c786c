"""`reid cfs-filter` options reach the library; user errors are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from _cfs_data import write_proxy, write_source
from typer.testing import CliRunner

from reidcli.cli.cfs_filter import cfs_filter
from reidcli.cli.common import ReidGroup

N = 12


def _app() -> typer.Typer:
    # The command on its own, with the error handling of the real `reid` group.
    app = typer.Typer(cls=ReidGroup)
    app.callback()(lambda: None)
    app.command("cfs-filter")(cfs_filter)
    return app


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    source = write_source(root / "lup", N)
    return source, write_proxy(root / "s", seed=0), write_proxy(root / "t", seed=1)


def _run(*args: str):
    return CliRunner().invoke(_app(), ["cfs-filter", *args])


def test_cli_writes_list_and_scores(inputs, tmp_path: Path) -> None:
    source, s, t = inputs
    out = tmp_path / "sel.txt"
    args = ["--source", f"luperson:{source}", "--keep", "0.25", "-o", str(out),
            "--source-model", str(s), "--target-model", str(t), "--scores",
            str(tmp_path / "scores.h5"), "--workers", "0", "--device", "cpu", "-b", "5"]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    body = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(body) == 3 and all(p.startswith("v0") for p in body)
    assert "kept 3 of 12" in result.output and (tmp_path / "scores.h5").is_file()
    again = _run(*args[:2], "--keep-count", "4", *args[4:])
    assert again.exit_code == 0, again.output
    assert "already scored" in again.output


@pytest.mark.parametrize(("extra", "message"), [
    (["--keep", "0"], "--keep must be a fraction"),
    (["--keep-count", "13"], "more than the 12 source images"),
    ([], "exactly one of --keep"),
])
def test_cli_keep_errors_are_one_line(inputs, tmp_path: Path, extra, message) -> None:
    source, s, t = inputs
    result = _run("--source", f"luperson:{source}", "--source-model", str(s), "--target-model",
                  str(t), "-o", str(tmp_path / "x.txt"), *extra)
    assert result.exit_code == 1
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_cli_needs_a_target_or_a_target_model(inputs, tmp_path: Path) -> None:
    source, s, _ = inputs
    result = _run("--source", f"luperson:{source}", "--keep", "0.5", "--source-model", str(s),
                  "-o", str(tmp_path / "x.txt"))
    assert result.exit_code == 1 and "--target" in result.output


def test_cli_help_lists_the_issue_options() -> None:
    result = CliRunner().invoke(_app(), ["cfs-filter", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--source", "--target", "--keep", "--keep-count", "--output", "--scores",
                   "--source-model", "--target-model", "--proxy-epochs", "--proxy-method",
                   "--proxy-sample", "--target-supervised", "--batch-size", "--workers",
                   "--device", "--amp", "--data-root", "--seed", "--workdir",
                   "--target-self-supervised", "--check-sample"):
        assert option in result.output, option


@pytest.mark.parametrize(("flag", "expected"), [
    ([], None), (["--target-supervised"], True), (["--target-self-supervised"], False),
])
def test_cli_target_proxy_training_defaults_to_auto(inputs, tmp_path: Path, monkeypatch,
                                                   flag, expected) -> None:
    seen = []
    monkeypatch.setattr("reidcli.selection.cfs_filter", lambda opts: seen.append(opts))
    source, _, _ = inputs
    result = _run("--source", f"luperson:{source}", "--target", "market1501", "--keep", "0.5",
                  "-o", str(tmp_path / "x.txt"), "--check-sample", "7", *flag)
    assert result.exit_code == 0, result.output
    assert seen[0].proxy.target_supervised is expected and seen[0].check_sample == 7


def test_cli_prints_the_self_check(inputs, tmp_path: Path) -> None:
    source, s, t = inputs
    result = _run("--source", f"luperson:{source}", "--target", f"luperson:{source}",
                  "--keep", "0.5", "-o", str(tmp_path / "x.txt"), "--source-model", str(s),
                  "--target-model", str(t), "--check-sample", "4", "--workers", "0",
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "self-check: " in text and " 4 luperson:" in text and "median percentile" in text
    assert (tmp_path / "x.work" / "scores.check.json").is_file()
