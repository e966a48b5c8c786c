"""The resumable writers' partial folder: what a resume keeps, drops and reports."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from reidcli.errors import BankError
from reidcli.retrieval.bank import BankWriter, read_bank
from reidcli.selection.scorefile import ScoreWriter, read_scores
from reidcli.utils.partial_h5 import partial_path


def _rows(n: int, start: int = 0) -> tuple[np.ndarray, list[str]]:
    return np.arange(start, start + n, dtype=np.float32) / 10, [f"img{i}.jpg" for i in
                                                              range(start, start + n)]


def _three_chunks(out: Path) -> None:
    w = ScoreWriter(out, attrs={"source": "x"}, keep_partial=True)
    for start in (0, 2, 4):
        w.append(*_rows(2, start))
        w.checkpoint()
    w.abort()


def _chunks(out: Path) -> list[str]:
    return sorted(p.name for p in partial_path(out).iterdir() if p.name.startswith("chunk"))


def test_chunks_are_committed_whole_and_resumed(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    _three_chunks(out)
    assert _chunks(out) == ["chunk-000000.h5", "chunk-000001.h5", "chunk-000002.h5"]
    w = ScoreWriter(out, attrs={"source": "x"}, resume=True)
    assert w.rows_done == 6
    w.append(*_rows(1, 6))
    w.finish()
    got = read_scores(out)
    assert got.paths == [f"img{i}.jpg" for i in range(7)]
    np.testing.assert_array_equal(got.scores, np.arange(7, dtype=np.float32) / 10)
    assert not partial_path(out).exists() and [p.name for p in tmp_path.iterdir()] == ["s.h5"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-start", "gap"])
def test_a_damaged_chunk_is_reported_and_rows_before_it_are_kept(
        tmp_path: Path, damage: str, caplog) -> None:
    out = tmp_path / "s.h5"
    _three_chunks(out)
    second = partial_path(out) / "chunk-000001.h5"
    if damage == "truncate":
        data = second.read_bytes()
        second.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        second.write_bytes(b"\0" * 100)
    elif damage == "wrong-start":
        with h5py.File(second, "r+") as f:
            f["scores"].attrs["start"] = 3
    else:
        second.unlink()
    with caplog.at_level(logging.WARNING, logger="reidcli"):
        w = ScoreWriter(out, attrs={"source": "x"}, resume=True)
    assert w.rows_done == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "chunk-00000" in line and "keeping the rows before it (scores=2)" in line
    assert _chunks(out) == ["chunk-000000.h5"]  # never extended past the damage
    w.append(*_rows(5, 2))
    w.finish()
    assert read_scores(out).paths == [f"img{i}.jpg" for i in range(7)]


def test_unreadable_manifest_and_old_partial_file_start_over(tmp_path: Path, caplog) -> None:
    out = tmp_path / "s.h5"
    _three_chunks(out)
    (partial_path(out) / "manifest.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="reidcli"):
        assert ScoreWriter(out, attrs={"source": "x"}, resume=True).rows_done == 0
    assert "cannot be trusted" in caplog.text and "unreadable" in caplog.text
    assert "other inputs" not in caplog.text
    caplog.clear()
    old = tmp_path / "b.h5"
    partial_path(old).write_bytes(b"an HDF5 file extended in place by an older version")
    with caplog.at_level(logging.WARNING, logger="reidcli"):
        w = BankWriter(old, resume=True)
    assert w.rows_done == {} and "older reidcli version" in caplog.text
    assert partial_path(old).is_dir()


def test_other_inputs_start_over(tmp_path: Path, caplog) -> None:
    out = tmp_path / "s.h5"
    _three_chunks(out)
    with caplog.at_level(logging.WARNING, logger="reidcli"):
        assert ScoreWriter(out, attrs={"source": "y"}, resume=True).rows_done == 0
    assert "other inputs" in caplog.text
    assert _chunks(out) == []


def test_a_failed_append_commits_nothing(tmp_path: Path) -> None:
    out = tmp_path / "b.h5"
    feats = np.ones((3, 4), np.float32)
    w = BankWriter(out, keep_partial=True)
    w.append("q", feats, [1, 2, 3], [0, 0, 0], ["a", "b", "c"])
    bad = feats.copy()
    bad[1, 0] = np.nan
    with pytest.raises(BankError, match="NaN"):
        w.append("q", bad, [4, 5, 6], [0, 0, 0], ["d", "e", "f"])
    with pytest.raises(BankError, match="3 feature rows but paths has 2"):
        w.append("q", feats, [4, 5, 6], [0, 0, 0], ["d", "e"])
    assert w.checkpoint() == {"q": 3}
    w.abort()
    w = BankWriter(out, resume=True)
    assert w.rows_done == {"q": 3}
    w.finish()
    with read_bank(out) as bank:
        assert bank["q"].read_paths() == ["a", "b", "c"]


def test_scores_rows_buffered_at_an_error_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    with pytest.raises(RuntimeError), ScoreWriter(out, attrs={}, keep_partial=True) as w:
        w.append(*_rows(3))
        raise RuntimeError("stopped")
    assert ScoreWriter(out, attrs={}, resume=True).rows_done == 3


def test_final_layout_is_the_documented_one(tmp_path: Path) -> None:
    out = tmp_path / "b.h5"
    with BankWriter(out, attrs={"model": "m"}, dtype="float16") as w:
        w.append("gallery", np.ones((2, 3)), [1, 2], [0, 1], ["a", "b"], [0, 0])
        w.checkpoint()
        w.append("gallery", np.ones((1, 3)), [3], [1], ["c"], [1])
    with h5py.File(out, "r") as f:
        assert dict(f.attrs) | {"created": "-"} == {
            "format": "reid-feature-bank", "version": 1, "model": "m", "created": "-"}
        g = f["gallery"]
        assert sorted(g) == ["camids", "feats", "paths", "pids", "viewids"]
        assert g["feats"].dtype == np.float16 and g["feats"].shape == (3, 3)
        assert g["pids"][:].tolist() == [1, 2, 3] and g["pids"].dtype == np.int64
        assert [p.decode() for p in g["paths"][:]] == ["a", "b", "c"]
        assert h5py.check_string_dtype(g["paths"].dtype).encoding == "utf-8"
        assert not g.attrs.keys()
