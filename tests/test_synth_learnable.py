"""The synthetic task is learnable but not trivial; identities and cameras behave as designed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidcli.data.synth import (
    MarketConfig,
    World,
    near_twin,
    plan_market,
    sample_identity,
    write_market,
)
from reidcli.data.synth.common import rng_for


def _histogram(path: Path) -> np.ndarray:
    """Per-channel histograms of the upper and lower body (centre strip), sqrt + L2."""
    a = np.asarray(Image.open(path).convert("RGB")) // 32
    h, w = a.shape[:2]
    a = a[:, w // 4 : w - w // 4]
    parts = (a[h // 8 : h // 2], a[h // 2 : 7 * h // 8])
    f = np.concatenate([np.bincount(p[..., c].ravel(), minlength=8) for p in parts
                        for c in range(3)]).astype(np.float64)
    f = np.sqrt(f)
    return f / np.linalg.norm(f)


def _scores(root: Path) -> tuple[float, float, float]:
    """(mean same-id cross-camera similarity, mean different-id similarity, rank-1)."""
    from reidcli.data import load_dataset

    ds = load_dataset(f"market1501:{root}")
    records = ds.query + [r for r in ds.gallery if r.pid > 0]
    feats = np.stack([_histogram(Path(r.path)) for r in records])
    pids = np.array([r.pid for r in records])
    cams = np.array([r.camid for r in records])
    sim = feats @ feats.T
    same = (pids[:, None] == pids[None]) & (cams[:, None] != cams[None])
    diff = pids[:, None] != pids[None]
    gallery = np.arange(len(ds.query), len(records))
    hits = []
    for q in range(len(ds.query)):
        g = gallery[~((pids[gallery] == pids[q]) & (cams[gallery] == cams[q]))]
        hits.append(pids[g[np.argmax(sim[q, g])]] == pids[q])
    return float(sim[same].mean()), float(sim[diff].mean()), float(np.mean(hits))


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[float, tuple[float, float, float]]:
    out = {}
    for strength in (0.0, 1.0):
        root = tmp_path_factory.mktemp("learn") / "m"
        write_market(root, MarketConfig(ids=48, cams=3, per_cam=3, seed=0,
                                        camera_strength=strength))
        out[strength] = _scores(root)
    return out


def test_colour_histograms_match_identities_across_cameras(scores: dict) -> None:
    same, diff, rank1 = scores[1.0]
    assert same - diff > 0.03
    assert rank1 > 0.1  # chance is 1/24


def test_but_not_perfectly(scores: dict) -> None:
    for _, _, rank1 in scores.values():
        assert rank1 < 1.0


def test_camera_strength_makes_cross_camera_matching_harder(scores: dict) -> None:
    (same0, diff0, r0), (same1, diff1, r1) = scores[0.0], scores[1.0]
    assert same0 - diff0 > same1 - diff1
    assert r0 > r1


def test_identities_share_attributes() -> None:
    world = World(0)
    people = [sample_identity(rng_for(0, 3, i), world.palette) for i in range(60)]
    kinds = [p.lower_kind for p in people]
    assert max(kinds.count(k) for k in set(kinds)) > 20
    assert len({(p.upper_pattern, p.bag, p.lower_kind) for p in people}) < len(people)


def test_near_twins_differ_in_few_attributes() -> None:
    world = World(0)
    rng = rng_for(0, 99)
    for _ in range(20):
        base = sample_identity(rng, world.palette)
        twin = near_twin(rng, base, world.palette)
        changed = [f.name for f in dataclasses.fields(base)
                   if getattr(base, f.name) != getattr(twin, f.name)
                   and f.name not in ("height", "width")]
        assert len(changed) <= 4


def test_an_identity_looks_alike_in_every_image() -> None:
    cfg = MarketConfig(ids=6, cams=3, seed=3, per_cam=2)
    seen: dict[str, object] = {}
    for job in plan_market(cfg, World(cfg.seed)):
        pid = Path(job.relpath).name.split("_")[0]
        if pid not in ("0000", "-1"):
            assert seen.setdefault(pid, job.person) == job.person
    assert len(seen) == cfg.ids


def test_camera_styles_are_per_camera_and_scale_with_strength() -> None:
    weak, default, strong = World(5, 0.0), World(5, 1.0), World(5, 2.0)
    assert default.camera(0) != default.camera(1)
    assert weak.camera(0).gains == (1.0, 1.0, 1.0) and weak.camera(0).noise == 0.0
    assert weak.camera(0).jpeg_quality == 95
    dev = [abs(np.log(w.camera(2).contrast)) for w in (default, strong)]
    assert dev[1] == pytest.approx(2 * dev[0])
    assert strong.camera(2).blur == pytest.approx(2 * default.camera(2).blur)


def test_occlusion_only_adds_occluders() -> None:
    world = World(2)
    base = plan_market(MarketConfig(ids=4, cams=2, seed=2, per_cam=2), world)
    occ = plan_market(MarketConfig(ids=4, cams=2, seed=2, per_cam=2, occlusion=1.0), world)
    differs = [not np.array_equal(np.asarray(world.render(a)[0]), np.asarray(world.render(b)[0]))
               for a, b in zip(base[:10], occ[:10], strict=True)]
    assert sum(differs) >= 8
