"""`reid extract`: banks match a direct forward pass, flip TTA, skip/resume, shards, CLI."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.data import load_dataset
from reidcli.data.records import UNKNOWN_CAMERA
from reidcli.data.transforms import build_test_transform
from reidcli.errors import ReidError
from reidcli.inference.extract import ExtractOptions, extract_bank
from reidcli.inference.features import FeatureExtractor
from reidcli.models.checkpoint import load_model, save_model
from reidcli.models.config import ModelConfig
from reidcli.models.reid_model import build_model
from reidcli.retrieval.bank import read_bank
from reidcli.runtime.files import shard
from reidcli.utils.partial_h5 import partial_path

SIZE = (64, 32)


def _write_market(root: Path, ids: int = 4, cams: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for folder, pid_range in (("bounding_box_train", range(1, ids + 1)),
                              ("query", range(ids + 1, 2 * ids + 1)),
                              ("bounding_box_test", range(ids + 1, 2 * ids + 1))):
        for pid in pid_range:
            for cam in range(1, cams + 1):
                if folder == "query" and cam > 1:
                    continue
                pixels = rng.integers(0, 255, (SIZE[0], SIZE[1], 3), dtype=np.uint8)
                path = root / folder / f"{pid:04d}_c{cam}s1_{pid * 10 + cam:06d}_01.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
    return root


def _run_dir(path: Path, seed: int = 0, **kw) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone="vit-tiny-test", img_size=SIZE, drop_path=0.0, **kw)
    save_model(path, build_model(cfg), cfg)
    return path


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return _write_market(tmp_path_factory.mktemp("market"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _run_dir(tmp_path_factory.mktemp("run"))


def _opts(run_dir: Path, market: Path, out: Path, **kw) -> ExtractOptions:
    base = dict(checkpoint=run_dir, output=out, data=f"market1501:{market}", batch_size=3,
                workers=0, device="cpu", progress=False)
    base.update(kw)
    return ExtractOptions(**base)


def test_bank_matches_direct_forward(run_dir: Path, market: Path, tmp_path: Path) -> None:
    result = extract_bank(_opts(run_dir, market, tmp_path / "f.h5"))
    dataset = load_dataset(f"market1501:{market}")
    assert result.rows == {"query": len(dataset.query), "gallery": len(dataset.gallery)}
    model, cfg = load_model(run_dir, num_classes=0)
    transform = build_test_transform(cfg.img_size, cfg.mean, cfg.std)
    with read_bank(tmp_path / "f.h5") as bank:
        assert bank.attrs["format"] == "reid-feature-bank"
        assert bank.attrs["model"] == "vit-tiny-test"
        assert bank.attrs["flip"] == np.False_ and len(bank.attrs["checkpoint_sha256"]) == 64
        for name, records in (("query", dataset.query), ("gallery", dataset.gallery)):
            split = bank[name]
            assert split.read_paths() == [r.path for r in records]
            np.testing.assert_array_equal(split.pids, [r.pid for r in records])
            np.testing.assert_array_equal(split.camids, [r.camid for r in records])
            imgs = torch.stack([transform(Image.open(r.path).convert("RGB")) for r in records])
            with torch.no_grad():
                expected = model(imgs).numpy()
            np.testing.assert_allclose(split.read_features(), expected, atol=1e-5)


def test_flip_averages_mirrored_features(run_dir: Path) -> None:
    model, _ = load_model(run_dir, num_classes=0)
    x = torch.randn(2, 3, *SIZE)
    flipped = FeatureExtractor(model, torch.device("cpu"), flip=True)(x)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(-1))) / 2
    torch.testing.assert_close(flipped, expected, atol=1e-5, rtol=1e-5)


def test_rerun_skips_and_other_model_needs_overwrite(run_dir: Path, market: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    extract_bank(_opts(run_dir, market, out))
    assert extract_bank(_opts(run_dir, market, out)).skipped
    other = _run_dir(tmp_path / "other", seed=1)
    with pytest.raises(ReidError, match="--overwrite"):
        extract_bank(_opts(other, market, out))
    assert not extract_bank(_opts(other, market, out, overwrite=True)).skipped


def test_interrupted_run_resumes_without_recomputing(run_dir: Path, market: Path,
                                                     tmp_path: Path, monkeypatch) -> None:
    reference = tmp_path / "ref.h5"
    extract_bank(_opts(run_dir, market, reference))
    out = tmp_path / "f.h5"
    calls = {"n": 0}
    real_call = FeatureExtractor.__call__

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # a user's Ctrl-C after three batches
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_bank(_opts(run_dir, market, out, checkpoint_every=1))
    assert not out.exists() and partial_path(out).exists()
    calls["n"] = 100
    extract_bank(_opts(run_dir, market, out, checkpoint_every=1))
    total_batches = 2 + 4  # batches of 3: 4 queries in two, 12 gallery images in four
    assert calls["n"] - 100 == total_batches - 3  # the 3 finished batches are not redone
    assert not partial_path(out).exists()
    with read_bank(out) as got, read_bank(reference) as want:
        for name in ("query", "gallery"):
            np.testing.assert_array_equal(got[name].read_features(), want[name].read_features())
            assert got[name].read_paths() == want[name].read_paths()


def test_image_folder_with_and_without_camera_regex(run_dir: Path, market: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    extract_bank(_opts(run_dir, market, out, data=None, images=market / "query",
                       cam_regex=r"_c(?P<cam>\d)"))
    with read_bank(out) as bank:
        split = bank["images"]
        assert len(split) == 4 and set(split.pids.tolist()) == {-1}
        assert set(split.camids.tolist()) == {0}
    extract_bank(_opts(run_dir, market, tmp_path / "g.h5", data=None, images=market / "query"))
    with read_bank(tmp_path / "g.h5") as bank:
        assert set(bank["images"].camids.tolist()) == {UNKNOWN_CAMERA}


def test_bad_input_is_a_clear_error(run_dir: Path, market: Path, tmp_path: Path) -> None:
    with pytest.raises(ReidError, match="exactly one of"):
        extract_bank(_opts(run_dir, market, tmp_path / "f.h5", images=market))
    with pytest.raises(ReidError, match="named group"):
        extract_bank(_opts(run_dir, market, tmp_path / "f.h5", data=None, images=market,
                           cam_regex=r"c(\d)"))
    with pytest.raises(ReidError, match="model.json"):
        extract_bank(_opts(tmp_path, market, tmp_path / "f.h5"))


def test_shards_cover_every_item_once() -> None:
    for n in (0, 1, 7, 10):
        for world in (1, 2, 3):
            parts = [shard(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, opts: ExtractOptions) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    extract_bank(opts)


@pytest.mark.slow
def test_two_rank_gloo_extraction_equals_single_process(run_dir: Path, market: Path,
                                                        tmp_path: Path) -> None:
    single = tmp_path / "single.h5"
    extract_bank(_opts(run_dir, market, single))
    merged = tmp_path / "merged.h5"
    mp.spawn(_rank_main, args=(2, _free_port(), _opts(run_dir, market, merged)), nprocs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.h5", "single.h5"]
    with read_bank(merged) as got, read_bank(single) as want:
        for name in ("query", "gallery"):
            np.testing.assert_allclose(got[name].read_features(), want[name].read_features(),
                                       atol=1e-5)
            assert got[name].read_paths() == want[name].read_paths()


def test_cli_writes_a_bank(run_dir: Path, market: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.h5"
    result = CliRunner().invoke(app, ["extract", "-c", str(run_dir), "--data",
                                      f"market1501:{market}", "-o", str(out), "--workers", "0",
                                      "--device", "cpu", "--flip"])
    assert result.exit_code == 0, result.output
    with read_bank(out) as bank:
        assert len(bank.query) == 4 and bank.attrs["flip"]
    again = CliRunner().invoke(app, ["extract", "-c", str(run_dir), "--data",
                                     f"market1501:{market}", "-o", str(out), "--workers", "0",
                                     "--device", "cpu", "--flip"])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_sie_model_on_a_folder_without_cameras(market: Path, tmp_path: Path) -> None:
    sie_run = _run_dir(tmp_path / "sie", sie_camera=True, num_cams=3)
    out = tmp_path / "f.h5"
    extract_bank(_opts(sie_run, market, out, data=None, images=market / "query"))
    model, _ = load_model(sie_run, num_classes=0)
    with read_bank(out) as bank:
        split = bank["images"]
        assert set(split.camids.tolist()) == {-1}
        feats, paths = split.read_features(), split.read_paths()
    # The fallback (mean camera embedding) differs from every real camera's feature.
    x = torch.stack([build_test_transform(SIZE)(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        for cam in range(3):
            assert not np.allclose(feats, model(x, torch.full((4,), cam)).numpy(), atol=1e-4)


def test_cli_dataset_options_reach_the_parser(run_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "mine"
    rng = np.random.default_rng(1)
    for folder, pid, cam in (("bounding_box_train", 1, 0), ("query", 7, 0),
                             ("bounding_box_test", 7, 1), ("bounding_box_test", 8, 2)):
        path = root / folder / f"id{pid}_cam{cam}_x.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)).save(path)
    out = tmp_path / "mine.h5"
    args = ["extract", "-c", str(run_dir), "--data", f"folder:{root}", "-o", str(out),
            "--workers", "0", "--device", "cpu",
            "-O", r"pattern=id(?P<pid>\d+)_cam(?P<cam>\d+)", "-O", "cam_base=0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with read_bank(out) as bank:
        assert bank.gallery.pids.tolist() == [7, 8] and bank.gallery.camids.tolist() == [1, 2]
        assert "cam_base=0" in bank.attrs["dataset"]
    bad = CliRunner().invoke(app, [*args[:-4], "-O", "nonsense", "--overwrite"])
    assert bad.exit_code == 1 and "KEY=VALUE" in bad.output
