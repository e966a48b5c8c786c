"""`synth unlabeled`: nested folders, manifest, target-like share, shared world with market."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidcli.data.synth import (
    MarketConfig,
    SynthError,
    UnlabeledConfig,
    World,
    plan_market,
    plan_unlabeled,
    read_manifest,
    write_unlabeled,
)

CFG = UnlabeledConfig(images=90, target_like=0.4, target_cams=3, seed=11, per_video=10,
                      empty=0.2)
PINNED = "1721e3d8588c6fdab583aa7d9006d8cee5687faf6224c2d1a049907522c3057d"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "lup"
    write_unlabeled(out, CFG)
    return out


def test_manifest_lists_every_image_with_its_domain(folder: Path) -> None:
    rows = read_manifest(folder)
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpg"))
    assert sorted(r.path for r in rows) == on_disk and len(on_disk) == CFG.images
    with (folder / "manifest.csv").open() as f:
        assert next(csv.reader(f)) == ["path", "domain", "source", "person", "height", "width"]
    assert {r.domain for r in rows} == {"target", "foreign"}
    target = [r for r in rows if r.domain == "target"]
    assert len(target) == round(CFG.images * CFG.target_like)
    assert all(r.person == 1 and (r.height, r.width) == CFG.size for r in target)
    assert {r.source for r in target} <= {f"target/c{c}" for c in range(1, CFG.target_cams + 1)}
    foreign = [r for r in rows if r.domain == "foreign"]
    assert sum(r.person == 0 for r in foreign) == round(len(foreign) * CFG.empty)


def test_nested_video_folders_and_sizes(folder: Path) -> None:
    for row in read_manifest(folder)[::7]:
        parts = Path(row.path).parts
        assert len(parts) == 3 and parts[0].startswith("part") and parts[2].startswith(parts[1])
        with Image.open(folder / row.path) as img:
            assert img.size == (row.width, row.height)
    # Each video folder holds one domain.
    by_video: dict[str, set[str]] = {}
    for row in read_manifest(folder):
        by_video.setdefault(str(Path(row.path).parent), set()).add(row.source)
    assert all(len(sources) == 1 for sources in by_video.values())


def test_foreign_domains_use_other_resolutions(folder: Path) -> None:
    sizes = {(r.height, r.width) for r in read_manifest(folder) if r.domain == "foreign"}
    assert sizes - {CFG.size}


def test_luperson_parser_reads_it(folder: Path) -> None:
    from reidcli.data import load_dataset

    ds = load_dataset(f"luperson:{folder}")
    assert len(ds.train) == CFG.images


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def test_deterministic(folder: Path, tmp_path: Path) -> None:
    write_unlabeled(tmp_path / "again", CFG, workers=2)
    assert _digest(tmp_path / "again") == _digest(folder)


def test_output_bytes_are_pinned(folder: Path) -> None:
    """Every byte of CFG's folder (images, manifest, synth.json) as recorded before the
    generator was last restructured: a refactoring must not move a single pixel or random
    draw. The JPEG bytes also depend on Pillow's encoder, so a Pillow upgrade may change the
    constant (look at the images before updating it)."""
    files = json.dumps(_digest(folder), sort_keys=True).encode()
    assert hashlib.sha256(files).hexdigest() == PINNED


def test_target_like_images_use_the_market_cameras() -> None:
    # Same seed and strength: the camera styles are the very objects `synth market` uses.
    jobs, rows = plan_unlabeled(CFG, World(CFG.seed))
    market_world = World(CFG.seed)
    for job, row in zip(jobs, rows, strict=True):
        if row.domain == "target":
            cam = int(row.source.split("/c")[1]) - 1
            assert World(CFG.seed).style(job.style) == market_world.camera(cam)
    assert World(CFG.seed).palette == market_world.palette
    assert World(CFG.seed + 1).camera(0) != market_world.camera(0)


def test_target_like_fraction_extremes() -> None:
    for fraction, expected in ((0.0, 0), (1.0, 20)):
        cfg = UnlabeledConfig(images=20, target_like=fraction, seed=0)
        _, rows = plan_unlabeled(cfg, World(0))
        assert sum(r.domain == "target" for r in rows) == expected


def test_target_like_images_resemble_the_market_set_more_than_foreign_ones(
    folder: Path,
) -> None:
    # Colour histograms: target-like crops are closer to a `synth market` set of the same
    # seed than the foreign crops are.
    def hist(images: list[np.ndarray]) -> np.ndarray:
        counts = sum(np.bincount((a // 64).reshape(-1, 3) @ np.array([16, 4, 1]), minlength=64)
                     for a in images)
        return counts / counts.sum()

    rows = read_manifest(folder)

    def load(kind: str) -> list[np.ndarray]:
        return [np.asarray(Image.open(folder / r.path)) for r in rows
                if r.domain == kind and r.person]

    world = World(CFG.seed)
    market_cfg = MarketConfig(ids=10, cams=CFG.target_cams, seed=CFG.seed, per_cam=2)
    market = [np.asarray(world.render(job)[0]) for job in plan_market(market_cfg, world)]
    reference = hist(market)
    target_gap = np.abs(hist(load("target")) - reference).sum()
    foreign_gap = np.abs(hist(load("foreign")) - reference).sum()
    assert target_gap < 0.5 * foreign_gap


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"images": 0}, "--images"), ({"target_like": 1.2}, "--target-like"),
     ({"target_cams": 0}, "--target-cams"), ({"empty": -0.1}, "--empty"),
     ({"domains": 0}, "--domains")],
)
def test_bad_options(changes: dict, message: str) -> None:
    with pytest.raises(SynthError, match=message):
        plan_unlabeled(UnlabeledConfig(**{**CFG.__dict__, **changes}), World(0))


def test_read_manifest_of_other_folder(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="manifest.csv"):
        read_manifest(tmp_path)
