"""Spec resolution (`NAME`, `NAME:PATH`, data root, $REID_DATA_ROOT) and user-facing errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from test_data_trees import write_image, write_market

from reidcli.data import list_datasets, load_dataset
from reidcli.data.images import read_image, verify_image
from reidcli.errors import DatasetError


def test_list_datasets_names_every_parser() -> None:
    names = [name for name, _ in list_datasets()]
    assert names == [
        "market1501",
        "dukemtmc",
        "occluded_duke",
        "msmt17",
        "cuhk03",
        "veri776",
        "luperson",
        "folder",
    ]
    assert all(desc for _, desc in list_datasets())


def test_name_is_found_under_the_env_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_market(tmp_path / "Market-1501-v15.09.15")
    monkeypatch.setenv("REID_DATA_ROOT", str(tmp_path))
    ds = load_dataset("market1501")
    assert ds.root == (tmp_path / "Market-1501-v15.09.15").resolve()
    assert len(ds.train) == 4


def test_explicit_data_root_wins_and_nested_folders_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REID_DATA_ROOT", str(tmp_path / "nowhere"))
    write_market(tmp_path / "root" / "market1501" / "Market-1501-v15.09.15")
    ds = load_dataset("Market", data_root=tmp_path / "root")
    assert ds.root.name == "Market-1501-v15.09.15"


def test_default_data_root_is_dot_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REID_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    write_market(tmp_path / "data" / "market1501")
    assert len(load_dataset("market1501").query) == 2


def test_path_spec_may_point_at_a_parent_folder(tmp_path: Path) -> None:
    write_market(tmp_path / "DukeMTMC-reID")
    assert len(load_dataset(f"dukemtmc:{tmp_path}").query) == 2


def test_missing_dataset_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("market1501", data_root=tmp_path)
    text = str(err.value)
    assert "could not find market1501" in text and "Market-1501-v15.09.15" in text
    assert "bounding_box_train/" in text and "market1501:PATH" in text


def test_missing_split_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "m" / "bounding_box_train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"missing folder\(s\) query, bounding_box_test"):
        load_dataset(f"market1501:{tmp_path / 'm'}")


def test_missing_path_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"msmt17:{tmp_path / 'nope'}")
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'.*market1501"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="folder:PATH"):
        load_dataset("folder")


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    root = write_market(tmp_path / "m")
    for f in (root / "query").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="split 'query' has no usable image"):
        load_dataset(f"market1501:{root}")


def test_read_image_gives_rgb_and_names_broken_files(tmp_path: Path) -> None:
    good = write_image(tmp_path / "ok.png")
    Image.open(good).convert("L").save(tmp_path / "gray.png")
    img = read_image(tmp_path / "gray.png")
    assert img.mode == "RGB" and img.size == (8, 16)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image .*broken.jpg"):
        read_image(broken)
    with pytest.raises(DatasetError, match="image not found: .*gone.jpg"):
        read_image(tmp_path / "gone.jpg")


def test_verify_catches_truncated_jpegs(tmp_path: Path) -> None:
    path = tmp_path / "t.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path, quality=95)
    assert verify_image(path) is None
    path.write_bytes(path.read_bytes()[:-400])
    assert (verify_image(path) or "").startswith("cannot decode (OSError")
    assert verify_image(tmp_path / "gone.jpg") == "file not found"
