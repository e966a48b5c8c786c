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
from reidcli.data.records import ReidDataset


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
    """Parse `spec`, then look for unreadable images and query ids missing from the gallery."""
    dataset, problems = parse_dataset(spec, data_root, **options)
    return check_parsed(dataset, problems, verify, workers)
