"""`check_dataset`: counts per split and everything wrong with a dataset on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reidcli.data.images import verify_image
from reidcli.data.loading import parse_dataset
from reidcli.data.problems import Problem, count_errors
from reidcli.data.records import ImageRecord, ReidDataset


@dataclass(frozen=True)
class SplitStats:
    split: str
    ids: int
    """Distinct identities (distractor id 0 included; junk -1 is never kept)."""
    images: int
    cameras: int


@dataclass
class CheckReport:
    dataset: ReidDataset
    stats: list[SplitStats]
    problems: list[Problem]

    @property
    def errors(self) -> int:
        return count_errors(self.problems)

    @property
    def warnings(self) -> int:
        return len(self.problems) - self.errors


def split_stats(dataset: ReidDataset) -> list[SplitStats]:
    return [
        SplitStats(
            split,
            len({r.pid for r in records if r.pid >= 0}),
            len(records),
            len({r.camid for r in records}),
        )
        for split, records in dataset.splits.items()
    ]


def missing_query_ids(dataset: ReidDataset) -> list[Problem]:
    """Query identities with no gallery image at all: evaluation skips those queries."""
    if "query" not in dataset.splits or "gallery" not in dataset.splits:
        return []
    gallery = {r.pid for r in dataset.gallery}
    missing = sorted({r.pid for r in dataset.query} - gallery)
    if not missing:
        return []
    shown = ", ".join(str(p) for p in missing[:10]) + (" ..." if len(missing) > 10 else "")
    return [
        Problem(
            "warning",
            "query id not in gallery",
            f"{len(missing)} query id(s) have no gallery image: {shown}",
            "query",
        )
    ]


def queries_with_positive(query: list[ImageRecord], gallery: list[ImageRecord]) -> int:
    """Queries that can be scored under the Market-1501 protocol: some gallery image shows
    the same identity (not -1) from another camera (same-camera matches are ignored)."""
    cams: dict[int, set[int]] = {}
    for r in gallery:
        if r.pid != -1:
            cams.setdefault(r.pid, set()).add(r.camid)
    return sum(1 for q in query if q.pid != -1 and cams.get(q.pid, set()) - {q.camid})


def evaluation_problem(dataset: ReidDataset) -> Problem | None:
    """An error when the dataset has query and gallery images but no query can be scored,
    so retrieval metrics (and fine-tuning's evaluation) cannot be computed; else None."""
    query, gallery = dataset.splits.get("query"), dataset.splits.get("gallery")
    if not query or not gallery or queries_with_positive(query, gallery):
        return None
    cameras = {r.camid for r in query} | {r.camid for r in gallery}
    shared = {r.pid for r in query} & {r.pid for r in gallery if r.pid != -1}
    if len(cameras) == 1:
        why = "every query and gallery image comes from one camera"
    elif not shared:
        why = "no query identity appears in the gallery"
    else:
        why = "each query identity appears in the gallery only under the query's own camera"
    return Problem(
        "error", "not evaluable",
        f"{dataset.name} at {dataset.root} cannot be evaluated: none of its {len(query)} "
        f"queries has a positive (the same identity seen by another camera in the gallery): "
        f"{why}", "query",
    )


def verify_images(
    dataset: ReidDataset,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Problem]:
    """Open and fully decode every image; one error per unreadable file."""
    items = [(split, r.path) for split, records in dataset.splits.items() for r in records]
    workers = workers or min(8, os.cpu_count() or 1)
    problems: list[Problem] = []
    # Decoding releases the GIL in Pillow, so threads give a real speed-up here.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (split, path), why in zip(
            items, pool.map(verify_image, (p for _, p in items), chunksize=64), strict=True
        ):
            if why is not None:
                problems.append(Problem("error", "unreadable image", f"{path}: {why}", split, path))
            if progress is not None:
                progress(1)
    return problems


def check_parsed(
    dataset: ReidDataset,
    problems: list[Problem],
    verify: bool = True,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    """Add the query/gallery check and (if `verify`) the decoding check to parse problems."""
    found = [*problems, *missing_query_ids(dataset)]
    unevaluable = evaluation_problem(dataset)
    if unevaluable is not None:
        found.append(unevaluable)
    if verify:
        found += verify_images(dataset, workers, progress)
    return CheckReport(dataset, split_stats(dataset), found)


def check_dataset(
    spec: str,
    data_root: str | os.PathLike[str] | None = None,
    verify: bool = True,
    workers: int | None = None,
    **options: Any,
) -> CheckReport:
    """Parse `spec`, then look for unreadable images, query ids missing from the gallery and
    a query set that cannot be evaluated at all."""
    dataset, problems = parse_dataset(spec, data_root, **options)
    return check_parsed(dataset, problems, verify, workers)
