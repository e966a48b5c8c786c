"""`reid datasets` and `reid datasets check` through typer's test runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_data_trees import write_market, write_msmt17
from typer.testing import CliRunner

from reidcli.cli.app import app

runner = CliRunner()


def _row(output: str, split: str) -> list[str]:
    line = next(ln for ln in output.splitlines() if re.search(rf"\b{split}\b", ln))
    return re.findall(r"\d+", line)


def test_bare_datasets_lists_every_parser() -> None:
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    for name in [
        "market1501",
        "dukemtmc",
        "occluded_duke",
        "msmt17",
        "cuhk03",
        "veri776",
        "luperson",
        "folder",
    ]:
        assert name in result.output


def test_check_counts_and_warnings_exit_0(tmp_path: Path) -> None:
    root = write_market(tmp_path / "m")
    result = runner.invoke(app, ["datasets", "check", f"market1501:{root}"])
    assert result.exit_code == 0, result.output
    assert _row(result.output, "train") == ["3", "4", "4"]
    assert _row(result.output, "query") == ["2", "2", "2"]
    assert _row(result.output, "gallery") == ["3", "3", "3"]
    assert "unparsed name" in result.output and "badname.jpg" in result.output
    assert "0 error(s), 1 warning(s)" in result.output
    strict = runner.invoke(app, ["datasets", "check", f"market1501:{root}", "--strict"])
    assert strict.exit_code == 1


def test_check_finds_undecodable_images_and_missing_query_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_msmt17(tmp_path / "MSMT17_V1")
    (root / "test/0002/0002_000_07_0303noon_0001_2.jpg").write_bytes(b"garbage")
    (root / "list_query.txt").write_text(
        "0000/0000_000_02_0303morning_0016_0.jpg 0\n0009/0009_000_01_0303morning_0001_0.jpg 9\n"
    )
    monkeypatch.setenv("REID_DATA_ROOT", str(tmp_path))
    result = runner.invoke(app, ["datasets", "check", "msmt17", "--max-problems", "50"])
    assert result.exit_code == 1, result.output
    assert "2 error(s), 1 warning(s)" in result.output
    out = " ".join(result.output.split())
    assert "unreadable image" in out and "0002_000_07_0303noon_0001_2.jpg" in out
    assert f"{root / 'test/0009/0009_000_01_0303morning_0001_0.jpg'}: file not found" in out
    assert "1 query id(s) have no gallery image: 9" in out
    quick = runner.invoke(app, ["datasets", "check", "msmt17", "--no-verify"])
    assert quick.exit_code == 0, quick.output


def test_check_errors_are_one_line_messages(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "check", "market1501", "--data-root", str(tmp_path)])
    assert result.exit_code == 1
    assert "could not find market1501" in result.output and "Traceback" not in result.output
    bad = runner.invoke(app, ["datasets", "check", f"cuhk03:{tmp_path}", "-o", "variant"])
    assert bad.exit_code == 2
    opt = runner.invoke(
        app, ["datasets", "check", f"market1501:{write_market(tmp_path / 'm')}", "-o", "x=1"]
    )
    assert opt.exit_code == 1 and "no option 'x'" in opt.output
