"""LUPerson-style unlabeled sets: recursive folders, list files, subset/keep."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_data_trees import write_image

import reidcli.data.parsers.common as common
from reidcli.data import load_dataset
from reidcli.data.parsers.luperson import kept_count
from reidcli.errors import DatasetError


def _tree(root: Path) -> Path:
    for rel in ["b/2.jpg", "a/1.jpg", "a/deep/3.png", "c.jpg"]:
        write_image(root / rel)
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def test_folder_is_scanned_recursively_in_sorted_order(tmp_path: Path) -> None:
    root = _tree(tmp_path / "lup")
    ds = load_dataset(f"luperson:{root}")
    rel = [Path(r.path).relative_to(root).as_posix() for r in ds.train]
    assert rel == ["c.jpg", "a/1.jpg", "a/deep/3.png", "b/2.jpg"]
    assert {(r.pid, r.camid, r.viewid) for r in ds.train} == {(-1, 0, 0)}
    assert list(ds.splits) == ["train"] and ds.num_train_pids == 0


def test_list_file_is_used_without_scanning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "lup")
    (root / "list.txt").write_text("# best first\nb/2.jpg 0.91\n\na/1.jpg 0.5\nmissing.jpg\n")

    def no_walk(_folder: Path) -> list[Path]:
        raise AssertionError("the list fast path must not scan the tree")

    monkeypatch.setattr(common, "walk_images", no_walk)
    monkeypatch.setattr("reidcli.data.parsers.luperson.walk_images", no_walk)
    ds = load_dataset(f"luperson:{root}")
    assert [r.path for r in ds.train] == [
        str(root / "b/2.jpg"),
        str(root / "a/1.jpg"),
        str(root / "missing.jpg"),
    ]
    direct = load_dataset(f"luperson:{root / 'list.txt'}", keep_first=1)
    assert [r.path for r in direct.train] == [str(root / "b/2.jpg")]


def test_subset_with_keep_fraction(tmp_path: Path) -> None:
    root = _tree(tmp_path / "lup")
    subset = tmp_path / "cfs.txt"
    subset.write_text("a/deep/3.png\nc.jpg\nb/2.jpg\na/1.jpg\n")
    ds = load_dataset(f"luperson:{root}", subset=str(subset), keep="0.5")
    assert [Path(r.path).name for r in ds.train] == ["3.png", "c.jpg"]
    with pytest.raises(DatasetError, match="not both"):
        load_dataset(f"luperson:{root}", subset=str(subset), keep=0.5, keep_first=2)
    with pytest.raises(DatasetError, match="fraction in"):
        load_dataset(f"luperson:{root}", keep=1.5)


def test_kept_count_matches_the_published_cfs_sizes() -> None:
    assert kept_count(4_180_243, 0.5, None) == 2_090_122
    assert kept_count(4_180_243, 0.6, None) == 2_508_146
    assert kept_count(10, 0.3, None) == 3
    assert kept_count(10, None, 25) == 10
    assert kept_count(3, 0.01, None) == 1
