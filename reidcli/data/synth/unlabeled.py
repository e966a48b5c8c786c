"""`synth unlabeled`: a LUPerson-style folder of unlabelled person crops from mixed sources.

A share `target_like` of the images comes from the target world (the cameras and clothing
palette `synth market` uses with the same seed); the rest from foreign domains with their own
palettes, scenery, cameras and crop sizes, some of them crops without any person. Images are
grouped into per-video folders, `partNN/vNNNNN/vNNNNN_FFFFFF_II.jpg`, like LUPerson's
per-video layout; `manifest.csv` records each image's domain for measuring data selection.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from reidcli.data.synth.common import (
    TAG_PLAN,
    TAG_VIDEO,
    SynthError,
    check_camera_strength,
    check_seed,
    check_size,
    rng_for,
)
from reidcli.data.synth.identity import sample_identity
from reidcli.data.synth.output import Progress, write_dataset
from reidcli.data.synth.world import TARGET, RenderJob, StyleRef, World
from reidcli.utils.checks import at_least, in_unit_interval

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("path", "domain", "source", "person", "height", "width")
VIDEOS_PER_PART = 50
IMAGES_PER_PERSON = 4


@dataclass(frozen=True)
class UnlabeledConfig:
    """Options of `synth unlabeled`."""

    images: int = 1000
    target_like: float = 0.3
    target_cams: int = 6
    seed: int = 0
    size: tuple[int, int] = (128, 64)
    camera_strength: float = 1.0
    occlusion: float = 0.0
    empty: float = 0.1
    domains: int = 4
    per_video: int = 24

    def validate(self) -> None:
        check_seed(self.seed)
        check_size(self.size)
        at_least(1, ("--images", self.images), error=SynthError)
        in_unit_interval(("--target-like", self.target_like), ("--occlusion", self.occlusion),
                         ("--empty", self.empty), error=SynthError)
        if not 1 <= self.target_cams <= 9:
            raise SynthError(f"--target-cams must be between 1 and 9, got {self.target_cams}")
        at_least(1, ("--domains", self.domains), ("--per-video", self.per_video), error=SynthError)
        check_camera_strength(self.camera_strength)

    @property
    def n_target(self) -> int:
        return round(self.images * self.target_like)


@dataclass(frozen=True, slots=True)
class ManifestRow:
    path: str
    domain: str
    source: str
    person: int
    height: int
    width: int


@dataclass(frozen=True)
class UnlabeledSummary:
    root: Path
    images: int
    target_like: int
    foreign: int
    empty: int
    videos: int
    seconds: float


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def plan_unlabeled(cfg: UnlabeledConfig, world: World) -> tuple[list[RenderJob], list[ManifestRow]]:
    """Every image with its manifest row, in a fixed order, without rendering anything."""
    cfg.validate()
    plan = rng_for(cfg.seed, TAG_PLAN, 2)
    n_foreign = cfg.images - cfg.n_target
    videos = [(True, n) for n in _chunks(cfg.n_target, cfg.per_video)]
    videos += [(False, n) for n in _chunks(n_foreign, cfg.per_video)]
    # Folder numbers are shuffled so a video's name says nothing about its domain.
    numbers = plan.permutation(len(videos))
    n_empty = round(n_foreign * cfg.empty)
    empty = {int(i) for i in plan.choice(n_foreign, n_empty, replace=False)} if n_empty else set()

    jobs: list[RenderJob] = []
    rows: list[ManifestRow] = []
    foreign_seen = 0
    for (is_target, count), number in zip(videos, numbers, strict=True):
        number = int(number)
        if is_target:
            cam = int(plan.integers(cfg.target_cams))
            ref, size, source = StyleRef(TARGET, cam), cfg.size, f"target/c{cam + 1}"
        else:
            dom = int(plan.integers(cfg.domains))
            sizes = world.domain(dom).sizes
            ref, size, source = StyleRef(dom, number), sizes[int(plan.integers(len(sizes)))], \
                f"foreign{dom}"
        palette = world.palette_of(ref)
        n_people = math.ceil(count / IMAGES_PER_PERSON)
        people = [sample_identity(rng_for(cfg.seed, TAG_VIDEO, number, k), palette)
                  for k in range(n_people)]
        vid = f"v{number:05d}"
        folder = f"part{number // VIDEOS_PER_PART:02d}/{vid}"
        frame = int(plan.integers(1, 500))
        for i in range(count):
            frame += int(plan.integers(1, 40))
            person = people[i % n_people]
            if not is_target:
                if foreign_seen in empty:
                    person = None
                foreign_seen += 1
            relpath = f"{folder}/{vid}_{frame:06d}_{int(plan.integers(1, 6)):02d}.jpg"
            jobs.append(RenderJob(relpath, size, ref, person, False, cfg.occlusion,
                                  (4, number, i)))
            rows.append(ManifestRow(relpath, "target" if is_target else "foreign", source,
                                    int(person is not None), size[0], size[1]))
    return jobs, rows


def manifest_text(rows: list[ManifestRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    for row in sorted(rows, key=lambda r: r.path):
        writer.writerow(asdict(row)[f] for f in MANIFEST_FIELDS)
    return buf.getvalue()


def read_manifest(root: str | Path) -> list[ManifestRow]:
    """The manifest of an unlabeled folder (for evaluating data selection)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise SynthError(f"{path} not found: is {root} a `reid synth unlabeled` folder?")
    with path.open(newline="", encoding="utf-8") as f:
        return [ManifestRow(r["path"], r["domain"], r["source"], int(r["person"]),
                            int(r["height"]), int(r["width"])) for r in csv.DictReader(f)]


def write_unlabeled(
    out: str | Path, cfg: UnlabeledConfig, *, overwrite: bool = False, workers: int = 1,
    progress: Progress | None = None,
) -> UnlabeledSummary:
    """Generate the folder described by `cfg` into `out` (atomically, see `write_dataset`)."""
    start = time.perf_counter()
    cfg.validate()
    world = World(cfg.seed, cfg.camera_strength)
    jobs, rows = plan_unlabeled(cfg, world)
    root = write_dataset(out, "unlabeled", cfg, jobs, world, overwrite=overwrite,
                         workers=workers, progress=progress,
                         files={MANIFEST: manifest_text(rows)})
    n_target = sum(r.domain == "target" for r in rows)
    return UnlabeledSummary(
        root=root, images=len(rows), target_like=n_target, foreign=len(rows) - n_target,
        empty=sum(r.person == 0 for r in rows), videos=len({Path(r.path).parent for r in rows}),
        seconds=time.perf_counter() - start,
    )
