"""Parsers against tiny trees in each dataset's layout: ids, cameras, junk, relabelling."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat
from test_data_trees import write_image, write_market, write_msmt17, write_veri

from reidcli.data import load_dataset, parse_dataset
from reidcli.errors import DatasetError


@pytest.fixture(autouse=True)
def _logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CLI test earlier in the session may have run setup_logging, which stops propagation.
    monkeypatch.setattr(logging.getLogger("reidcli"), "propagate", True)


def _triples(records):
    return [(Path(r.path).name, r.pid, r.camid) for r in records]


def test_market_splits_relabel_junk_and_distractors(tmp_path: Path) -> None:
    write_market(tmp_path / "m")
    ds, problems = parse_dataset(f"market1501:{tmp_path / 'm'}")
    # Train ids 2, 7, 10 -> 0, 1, 2 in sorted original order; records in name order.
    assert _triples(ds.train) == [
        ("0002_c1s1_000451_03.jpg", 0, 0),
        ("0007_c2s1_000001_01.jpg", 1, 1),
        ("0007_c3s1_000002_01.jpg", 1, 2),
        ("0010_c6s2_000003_01.jpg", 2, 5),
    ]
    assert _triples(ds.query) == [
        ("0001_c1s1_001051_00.jpg", 1, 0),
        ("0003_c2s1_000001_00.jpg", 3, 1),
    ]
    # Junk (-1) dropped, distractor (0) kept, original ids kept in the gallery.
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 2), (1, 1), (3, 0)]
    assert ds.num_train_pids == 3 and ds.num_cams == 6 and ds.num_views == 1
    assert all(Path(r.path).is_absolute() and Path(r.path).is_file() for r in ds.gallery)
    assert [(p.kind, p.split, Path(p.path).name) for p in problems] == [
        ("unparsed name", "gallery", "badname.jpg")
    ]
    assert problems[0].severity == "warning"


@pytest.mark.parametrize("name", ["dukemtmc", "occluded_duke", "duke"])
def test_duke_variants_share_the_market_layout(tmp_path: Path, name: str) -> None:
    root = tmp_path / "d"
    for folder, fname in [
        ("bounding_box_train", "0005_c8_f0046182.jpg"),
        ("query", "0009_c2_f0000100.jpg"),
        ("bounding_box_test", "0009_c7_f0000200.jpg"),
    ]:
        write_image(root / folder / fname)
    ds = load_dataset(f"{name}:{root}")
    assert _triples(ds.train) == [("0005_c8_f0046182.jpg", 0, 7)]
    assert _triples(ds.query) == [("0009_c2_f0000100.jpg", 9, 1)]
    assert ds.num_cams == 8


def test_msmt17_v1_lists(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_msmt17(tmp_path / "MSMT17_V1")
    with caplog.at_level(logging.WARNING):
        ds, problems = parse_dataset(f"msmt17:{root}")
    assert problems == [] and "V2" not in caplog.text
    # train = list_train + list_val; ids 1, 5 -> 0, 1; camera = third `_` field, 0-based.
    assert [(r.pid, r.camid) for r in ds.train] == [(1, 0), (0, 13), (1, 14)]
    assert ds.train[0].path == str(root / "train/0005/0005_000_01_0303morning_0015_0.jpg")
    assert [(r.pid, r.camid) for r in ds.query] == [(0, 1)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(0, 2), (2, 6)]
    assert ds.gallery[1].path == str(root / "test/0002/0002_000_07_0303noon_0001_2.jpg")
    assert ds.num_cams == 15


def test_msmt17_v2_is_read_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_msmt17(tmp_path / "MSMT17_V2", v2=True)
    with caplog.at_level(logging.WARNING, logger="reidcli"):
        ds, problems = parse_dataset(f"msmt17:{root}")
    assert "4 mAP" in caplog.text
    assert [p.kind for p in problems] == ["msmt17 v2"]
    assert "mask_train_v2" in ds.train[0].path and len(ds.train) == 3


def test_msmt17_bad_list_line_is_an_error_problem(tmp_path: Path) -> None:
    root = write_msmt17(tmp_path / "m")
    with (root / "list_gallery.txt").open("a") as f:
        f.write("garbage\n")
    ds, problems = parse_dataset(f"msmt17:{root}")
    assert len(ds.gallery) == 2
    assert [(p.severity, p.kind) for p in problems] == [("error", "bad list line")]
    assert "list_gallery.txt line 3" in problems[0].message


def test_veri_views_from_keypoint_files_in_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_veri(tmp_path / "VeRi")
    # A decoy keypoint file in the working directory must not be read.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    (cwd / "keypoint_train.txt").write_text("image_train/0001_c001_00016450_0.jpg 6\n")
    monkeypatch.chdir(cwd)
    ds, problems = parse_dataset(f"veri776:{root}")
    assert [(r.pid, r.camid, r.viewid) for r in ds.train] == [(0, 0, 3), (1, 19, 7)]
    assert [(r.pid, r.camid, r.viewid) for r in ds.query] == [(2, 1, 0)]
    assert [(r.pid, r.camid, r.viewid) for r in ds.gallery] == [(2, 4, 5), (4, 18, 1)]
    assert ds.num_cams == 20 and ds.num_views == 8
    assert [(p.kind, p.split) for p in problems] == [("no viewpoint", "query")]


def test_veri_without_keypoints_warns_and_uses_view_0(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_veri(tmp_path / "VeRi", keypoints=False)
    with caplog.at_level(logging.WARNING, logger="reidcli"):
        ds = load_dataset(f"veri776:{root}")
    assert "keypoint_train.txt not found" in caplog.text
    assert {r.viewid for s in ds.splits.values() for r in s} == {0}
    assert ds.num_views == 1


def test_cuhk03_market_style_labeled_and_detected(tmp_path: Path) -> None:
    root = tmp_path / "cuhk03-np"
    for variant, pid in (("labeled", 11), ("detected", 22)):
        write_image(root / variant / "bounding_box_train" / f"{pid:04d}_c2_1.png")
        write_image(root / variant / "query" / "0100_c1_1.png")
        write_image(root / variant / "bounding_box_test" / "0100_c2_3.png")
    labeled = load_dataset(f"cuhk03:{root}")
    detected = load_dataset(f"cuhk03:{root}", variant="detected")
    assert "/labeled/" in labeled.train[0].path and "/detected/" in detected.train[0].path
    assert [(r.pid, r.camid) for r in detected.train] == [(0, 1)]
    assert [(r.pid, r.camid) for r in detected.gallery] == [(100, 1)]
    with pytest.raises(DatasetError, match="labeled or detected"):
        load_dataset(f"cuhk03:{root}", variant="both")


def test_cuhk03_protocol_config_mat(tmp_path: Path) -> None:
    root = tmp_path / "cuhk03"
    names = ["1_001_1_01.png", "1_001_2_06.png", "1_004_1_01.png", "2_030_2_07.png"]
    for name in names:
        write_image(root / "images_detected" / name)
    filelist = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        filelist[i, 0] = name
    savemat(
        root / "cuhk03_new_protocol_config_detected.mat",
        {
            "filelist": filelist,
            "labels": np.array([[1], [1], [4], [1330]]),
            "camId": np.array([[1], [2], [1], [2]]),
            "train_idx": np.array([[3], [1], [2]]),  # 1-based, as in the released files
            "query_idx": np.array([[4]]),
            "gallery_idx": np.array([[4]]),
        },
    )
    ds = load_dataset(f"cuhk03:{root}", variant="detected")
    assert _triples(ds.train) == [
        ("1_004_1_01.png", 1, 0),
        ("1_001_1_01.png", 0, 0),
        ("1_001_2_06.png", 0, 1),
    ]
    assert _triples(ds.query) == [("2_030_2_07.png", 1330, 1)]
    with pytest.raises(DatasetError, match="cuhk03_new_protocol_config_labeled.mat"):
        load_dataset(f"cuhk03:{root}")


def test_folder_with_a_custom_regex(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    for name in ["id12_cam0_a.png", "id3_cam2_b.png", "junk.png"]:
        write_image(root / "bounding_box_train" / name)
    write_image(root / "query" / "id5_cam1_q.png")
    ds, problems = parse_dataset(
        f"folder:{root}", pattern=r"id(?P<pid>\d+)_cam(?P<cam>\d+)", cam_base="0"
    )
    assert set(ds.splits) == {"train", "query"}
    assert _triples(ds.train) == [("id12_cam0_a.png", 1, 0), ("id3_cam2_b.png", 0, 2)]
    assert _triples(ds.query) == [("id5_cam1_q.png", 5, 1)]
    assert [Path(p.path).name for p in problems] == ["junk.png"]


def test_folder_regex_needs_pid_and_cam_groups(tmp_path: Path) -> None:
    write_market(tmp_path / "m")
    with pytest.raises(DatasetError, match="missing: cam"):
        load_dataset(f"folder:{tmp_path / 'm'}", pattern=r"(?P<pid>\d+)")
    ds = load_dataset(f"folder:{tmp_path / 'm'}")  # Market names by default
    assert len(ds.train) == 4 and len(ds.gallery) == 3


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    write_market(tmp_path / "m")
    with pytest.raises(DatasetError, match="no option 'variant'"):
        load_dataset(f"market1501:{tmp_path / 'm'}", variant="labeled")
