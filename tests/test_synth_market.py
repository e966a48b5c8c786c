"""`synth market`: layout, names, counts, splits, determinism and parse-back."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidcli.data.synth import MarketConfig, SynthError, World, plan_market, write_market

MARKET_RE = re.compile(r"([-\d]+)_c(\d)")
NAME_RE = re.compile(r"^(-1|\d{4})_c([1-9])s(\d)_(\d{6})_(\d{2})\.jpg$")
SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")
CFG = MarketConfig(ids=16, cams=3, seed=7, per_cam=3, occlusion=0.3)
PINNED = "86903f328a181b039c57bd23cc72621ae9459737e9185f7c391104c9f4486e90"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "market"
    write_market(out, CFG)
    return out


def _names(root: Path, split: str) -> list[str]:
    return sorted(p.name for p in (root / split).iterdir())


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def test_layout_and_file_names(market: Path) -> None:
    assert sorted(p.name for p in market.iterdir()) == sorted([*SPLIT_DIRS, "synth.json"])
    for split in SPLIT_DIRS:
        names = _names(market, split)
        assert names
        for name in names:
            match = NAME_RE.match(name)
            assert match, name
            assert MARKET_RE.search(name).groups() == match.groups()[:2]
            assert 1 <= int(match.group(2)) <= CFG.cams


def test_counts_and_splits(market: Path) -> None:
    pids = {split: [n.split("_")[0] for n in _names(market, split)] for split in SPLIT_DIRS}
    train, query, gallery = (set(pids[s]) for s in SPLIT_DIRS)
    assert "0000" not in train | query and "-1" not in train | query
    assert {"0000", "-1"} <= gallery
    test_ids = gallery - {"0000", "-1"}
    assert len(train) == CFG.ids // 2 and len(test_ids) == CFG.ids - CFG.ids // 2
    assert train.isdisjoint(test_ids)
    assert query == test_ids
    # Several images per id and camera in train.
    per_id_cam: dict[tuple[str, str], int] = defaultdict(int)
    for name in _names(market, "bounding_box_train"):
        per_id_cam[name.split("_")[0], MARKET_RE.search(name).group(2)] += 1
    assert set(per_id_cam.values()) == {CFG.per_cam}


def test_queries_one_per_id_and_camera_on_at_most_two_cameras(market: Path) -> None:
    cams_of: dict[str, list[str]] = defaultdict(list)
    for name in _names(market, "query"):
        pid, cam = MARKET_RE.search(name).groups()
        cams_of[pid].append(cam)
    gallery = [MARKET_RE.search(n).groups() for n in _names(market, "bounding_box_test")]
    for pid, cams in cams_of.items():
        assert 1 <= len(cams) <= 2 and len(set(cams)) == len(cams)
        for cam in cams:
            # A true match in another camera, so no query is dropped by the protocol.
            assert any(p == pid and c != cam for p, c in gallery)


def test_image_sizes(market: Path) -> None:
    for split in SPLIT_DIRS:
        for name in _names(market, split)[:5]:
            with Image.open(market / split / name) as img:
                assert img.size == (CFG.size[1], CFG.size[0]) and img.mode == "RGB"


def test_metadata_records_the_config(market: Path) -> None:
    meta = json.loads((market / "synth.json").read_text())
    assert meta["kind"] == "market" and meta["config"]["seed"] == CFG.seed


def test_output_bytes_are_pinned(market: Path) -> None:
    """Every byte of CFG's folder (images and synth.json) as recorded before the generator was
    last restructured: a refactoring must not move a single pixel or random draw. The JPEG
    bytes also depend on Pillow's encoder, so a Pillow upgrade may change the constant (look
    at the images before updating it)."""
    files = _digest(market) | {"synth.json": hashlib.sha256(
        (market / "synth.json").read_bytes()).hexdigest()}
    assert hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest() == PINNED


def test_same_seed_same_bytes_any_worker_count(market: Path, tmp_path: Path) -> None:
    write_market(tmp_path / "again", CFG, workers=2)
    assert _digest(tmp_path / "again") == _digest(market)


def test_different_seed_differs(market: Path, tmp_path: Path) -> None:
    other = MarketConfig(**{**CFG.__dict__, "seed": CFG.seed + 1})
    write_market(tmp_path / "other", other)
    a = np.asarray(Image.open(next((market / "bounding_box_train").iterdir())))
    b = np.asarray(Image.open(next((tmp_path / "other" / "bounding_box_train").iterdir())))
    assert _digest(tmp_path / "other") != _digest(market)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_options_change_counts() -> None:
    cfg = MarketConfig(ids=10, cams=4, seed=1, train_ids=3, per_cam=2, distractors=5, junk=2)
    jobs = plan_market(cfg, World(cfg.seed))
    names = [Path(j.relpath).name for j in jobs]
    assert sum(n.startswith("0000_") for n in names) == 5
    assert sum(n.startswith("-1_") for n in names) == 2
    train = {Path(j.relpath).name.split("_")[0] for j in jobs
             if j.relpath.startswith("bounding_box_train/")}
    assert len(train) == 3
    assert len(set(names)) == len(names)


def test_parse_back_with_market_parser(market: Path) -> None:
    from reidcli.data import load_dataset

    ds = load_dataset(f"market1501:{market}")
    n_train = len(_names(market, "bounding_box_train"))
    n_query = len(_names(market, "query"))
    gallery = _names(market, "bounding_box_test")
    assert len(ds.train) == n_train and len(ds.query) == n_query
    assert len(ds.gallery) == sum(not n.startswith("-1_") for n in gallery)
    assert ds.num_train_pids == CFG.ids // 2
    assert {r.pid for r in ds.train} == set(range(CFG.ids // 2))
    assert {r.camid for r in ds.train + ds.query + ds.gallery} <= set(range(CFG.cams))
    assert ds.num_cams == CFG.cams
    assert any(r.pid == 0 for r in ds.gallery)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"cams": 10}, "--cams"), ({"cams": 1}, "--cams"), ({"ids": 1}, "--ids"),
     ({"train_ids": 16}, "--train-ids"), ({"size": (20, 10)}, "--size"),
     ({"occlusion": 1.5}, "--occlusion"), ({"seed": -1}, "--seed"),
     ({"per_cam": 0}, "--per-cam"), ({"camera_strength": -1.0}, "--camera-strength")],
)
def test_bad_options_raise_clear_errors(changes: dict, message: str) -> None:
    cfg = MarketConfig(**{**CFG.__dict__, **changes})
    with pytest.raises(SynthError, match=message):
        plan_market(cfg, World(0))


def test_refuses_non_empty_output_and_overwrites_on_request(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    small = MarketConfig(ids=4, cams=2, seed=0, per_cam=1)
    with pytest.raises(SynthError, match="--overwrite"):
        write_market(out, small)
    assert (out / "keep.txt").exists()
    write_market(out, small, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "query").is_dir()
    # No staging folders are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reidcli.data.synth.output as output_mod

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(output_mod, "write_jobs", boom)
    with pytest.raises(RuntimeError):
        write_market(tmp_path / "out", MarketConfig(ids=4, cams=2, seed=0, per_cam=1))
    assert list(tmp_path.iterdir()) == []
