"""`synth market`: a labelled dataset in the Market-1501 layout with Market file names.

Layout: `bounding_box_train/` (train ids), `query/` (one image per test id and camera on up
to two of its cameras) and `bounding_box_test/` (the other test images, plus `0000_`
distractors and `-1_` junk). Names are `{pid:04d}_c{cam}s{seq}_{frame:06d}_{idx:02d}.jpg`
with 1-based cameras, so the standard regex `([-\\d]+)_c(\\d)` parses them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from reidcli.data.synth.common import (
    TAG_IDENTITY,
    TAG_PLAN,
    TAG_SPLIT,
    SynthError,
    check_camera_strength,
    check_seed,
    check_size,
    rng_for,
)
from reidcli.data.synth.identity import Identity, near_twin, sample_identity
from reidcli.data.synth.output import Progress, write_dataset
from reidcli.data.synth.world import TARGET, RenderJob, StyleRef, World
from reidcli.utils.checks import at_least, in_unit_interval, non_negative

TRAIN_DIR, QUERY_DIR, GALLERY_DIR = "bounding_box_train", "query", "bounding_box_test"
MAX_SEQ = 6


@dataclass(frozen=True)
class MarketConfig:
    """Options of `synth market`. `None` counts take the documented defaults."""

    ids: int = 100
    cams: int = 6
    seed: int = 0
    size: tuple[int, int] = (128, 64)
    train_ids: int | None = None
    per_cam: int = 4
    distractors: int | None = None
    junk: int | None = None
    occlusion: float = 0.0
    camera_strength: float = 1.0
    twins: float = 0.15

    def validate(self) -> None:
        check_seed(self.seed)
        check_size(self.size)
        if not 2 <= self.ids <= 9999:
            raise SynthError(
                f"--ids must be between 2 and 9999 (4-digit Market ids), got {self.ids}"
            )
        if not 2 <= self.cams <= 9:
            raise SynthError("--cams must be between 2 and 9: Market names hold one camera "
                             f"digit and queries need a second camera, got {self.cams}")
        if self.train_ids is not None and not 1 <= self.train_ids < self.ids:
            raise SynthError(f"--train-ids must be between 1 and {self.ids - 1} so both splits "
                             f"have identities, got {self.train_ids}")
        at_least(1, ("--per-cam", self.per_cam), error=SynthError)
        non_negative(("--distractors", self.distractors), ("--junk", self.junk), error=SynthError)
        in_unit_interval(("--occlusion", self.occlusion), ("--twins", self.twins),
                         what="probability", error=SynthError)
        check_camera_strength(self.camera_strength)

    @property
    def n_train(self) -> int:
        return self.train_ids if self.train_ids is not None else self.ids // 2


@dataclass(frozen=True)
class MarketSummary:
    root: Path
    train_ids: int
    train_images: int
    query_ids: int
    query_images: int
    gallery_ids: int
    gallery_images: int
    distractors: int
    junk: int
    cams: int
    seconds: float

    @property
    def images(self) -> int:
        return self.train_images + self.query_images + self.gallery_images


def market_identities(cfg: MarketConfig, world: World) -> dict[int, Identity]:
    """Identities 1..ids; identity `pid` depends only on the seed and the ones before it."""
    people: dict[int, Identity] = {}
    for pid in range(1, cfg.ids + 1):
        rng = rng_for(cfg.seed, TAG_IDENTITY, pid)
        if people and rng.random() < cfg.twins:
            base = people[int(rng.integers(1, pid))]
            people[pid] = near_twin(rng, base, world.palette)
        else:
            people[pid] = sample_identity(rng, world.palette)
    return people


class _Namer:
    """Market names: per camera, frames increase within each of a few sequences."""

    def __init__(self, seed: int, cams: int) -> None:
        self._rng = rng_for(seed, TAG_PLAN, 0)
        self._frame = {(c, s): int(self._rng.integers(1, 400)) for c in range(cams)
                       for s in range(1, MAX_SEQ + 1)}

    def name(self, pid: int, cam: int) -> str:
        seq = int(self._rng.integers(1, MAX_SEQ + 1))
        self._frame[cam, seq] += int(self._rng.integers(1, 60))
        idx = int(self._rng.integers(1, 5))
        label = "-1" if pid < 0 else f"{pid:04d}"
        return f"{label}_c{cam + 1}s{seq}_{self._frame[cam, seq]:06d}_{idx:02d}.jpg"


def plan_market(cfg: MarketConfig, world: World) -> list[RenderJob]:
    """Every image of the dataset, in a fixed order, without rendering anything."""
    cfg.validate()
    people = market_identities(cfg, world)
    order = rng_for(cfg.seed, TAG_SPLIT).permutation(cfg.ids) + 1
    train = sorted(int(p) for p in order[: cfg.n_train])
    test = sorted(int(p) for p in order[cfg.n_train :])
    test_set = set(test)
    plan = rng_for(cfg.seed, TAG_PLAN, 1)
    namer = _Namer(cfg.seed, cfg.cams)
    jobs: list[RenderJob] = []
    size = cfg.size

    def job(folder: str, pid: int, cam: int, person: Identity | None, fragment: bool,
            key: tuple[int, ...]) -> RenderJob:
        return RenderJob(f"{folder}/{namer.name(pid, cam)}", size, StyleRef(TARGET, cam),
                         person, fragment, cfg.occlusion, key)

    gallery_count = 0
    for pid in train + test:
        n_cams = int(plan.integers(2, cfg.cams + 1))
        cams = sorted(int(c) for c in plan.choice(cfg.cams, n_cams, replace=False))
        query_cams: set[int] = set()
        if pid in test_set:
            # With one image per camera a query camera loses its only gallery image, so at
            # least one camera must stay gallery-only for the query to have a true match.
            n_query = min(2, n_cams if cfg.per_cam > 1 else n_cams - 1)
            query_cams = {int(c) for c in plan.choice(cams, n_query, replace=False)}
        for cam in cams:
            for k in range(cfg.per_cam):
                if pid in test_set:
                    folder = QUERY_DIR if cam in query_cams and k == 0 else GALLERY_DIR
                    gallery_count += folder == GALLERY_DIR
                else:
                    folder = TRAIN_DIR
                jobs.append(job(folder, pid, cam, people[pid], False, (1, pid, cam, k)))

    n_distractors = cfg.distractors if cfg.distractors is not None else max(1, gallery_count // 10)
    n_junk = cfg.junk if cfg.junk is not None else max(1, gallery_count // 20)
    for i in range(n_distractors):
        # False detections: strangers framed badly, or empty scenery.
        rng = rng_for(cfg.seed, TAG_IDENTITY, 100_000 + i)
        stranger = sample_identity(rng, world.palette) if rng.random() < 0.7 else None
        jobs.append(job(GALLERY_DIR, 0, int(plan.integers(cfg.cams)), stranger, True, (2, i)))
    for i in range(n_junk):
        rng = rng_for(cfg.seed, TAG_IDENTITY, 200_000 + i)
        fragment = sample_identity(rng, world.palette) if rng.random() < 0.5 else None
        jobs.append(job(GALLERY_DIR, -1, int(plan.integers(cfg.cams)), fragment, True, (3, i)))
    return jobs


def summarize_market(root: Path, jobs: list[RenderJob], cams: int, seconds: float) -> MarketSummary:
    def ids(folder: str) -> set[str]:
        return {Path(j.relpath).name.split("_")[0] for j in jobs
                if j.relpath.startswith(folder + "/")}

    def count(folder: str) -> int:
        return sum(j.relpath.startswith(folder + "/") for j in jobs)

    names = [Path(j.relpath).name for j in jobs]
    gallery = ids(GALLERY_DIR) - {"0000", "-1"}
    return MarketSummary(
        root=root,
        train_ids=len(ids(TRAIN_DIR)), train_images=count(TRAIN_DIR),
        query_ids=len(ids(QUERY_DIR)), query_images=count(QUERY_DIR),
        gallery_ids=len(gallery), gallery_images=count(GALLERY_DIR),
        distractors=sum(n.startswith("0000_") for n in names),
        junk=sum(n.startswith("-1_") for n in names),
        cams=cams, seconds=seconds,
    )


def write_market(
    out: str | Path, cfg: MarketConfig, *, overwrite: bool = False, workers: int = 1,
    progress: Progress | None = None,
) -> MarketSummary:
    """Generate the dataset described by `cfg` into `out` (atomically, see `write_dataset`)."""
    start = time.perf_counter()
    cfg.validate()
    world = World(cfg.seed, cfg.camera_strength)
    jobs = plan_market(cfg, world)
    root = write_dataset(out, "market", cfg, jobs, world, overwrite=overwrite, workers=workers,
                         progress=progress, folders=(TRAIN_DIR, QUERY_DIR, GALLERY_DIR))
    return summarize_market(root, jobs, cfg.cams, time.perf_counter() - start)
