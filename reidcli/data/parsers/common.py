"""Helpers shared by the parsers: image listing, name patterns, relabelling, counts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from reidcli.data.problems import Problem
from reidcli.data.records import ImageRecord, ReidDataset
from reidcli.errors import DatasetError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

MARKET_PATTERN = re.compile(r"(?P<pid>[-\d]+)_c(?P<cam>\d+)")
"""Market-1501 / DukeMTMC names: `0002_c1s1_000451_03.jpg`, `-1_c3s2_...` (junk)."""


def is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(
    folder: Path, problems: list[Problem] | None = None, split: str | None = None
) -> list[Path]:
    """Image files directly in `folder`, sorted by name so record order is deterministic.

    An image name that is a link to nothing, or into a loop of links, is not an image
    either; it is reported in `problems` as a broken link instead of vanishing silently.
    """
    names: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not is_image(entry.name):
                continue
            try:
                if entry.is_file():
                    names.append(entry.name)
                    continue
                dangling = entry.is_symlink() and not entry.is_dir()
                why = "a symbolic link to a missing file" if dangling else None
            except OSError as err:  # ELOOP: the link cannot be followed at all
                why = f"a symbolic link that cannot be followed ({err.strerror})"
            if why is not None and problems is not None:
                problems.append(
                    Problem("error", "broken link", f"{entry.path}: {why}", split, entry.path)
                )
    return [folder / n for n in sorted(names)]


def walk_images(folder: Path) -> list[Path]:
    """Image files anywhere below `folder`, in sorted path order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found.extend(Path(dirpath) / n for n in sorted(filenames) if is_image(n))
    return found


def require_dirs(name: str, root: Path, dirs: Iterable[str], layout: str) -> None:
    missing = [d for d in dirs if not (root / d).is_dir()]
    if missing:
        raise DatasetError(
            f"{name} at {root}: missing folder(s) {', '.join(missing)}. Expected layout:\n{layout}"
        )


def require_file(name: str, path: Path, layout: str) -> None:
    if not path.is_file():
        raise DatasetError(f"{name}: missing file {path}. Expected layout:\n{layout}")


def parse_named_folder(
    folder: Path,
    split: str,
    problems: list[Problem],
    pattern: re.Pattern[str] = MARKET_PATTERN,
    cam_base: int = 1,
) -> list[ImageRecord]:
    """Records from file names matched by `pattern` (groups `pid`, `cam`, optional `view`).

    pid -1 marks junk and is dropped; pid 0 (distractors) is kept. Names that do not match,
    or whose camera is below `cam_base`, are reported and skipped.
    """
    records: list[ImageRecord] = []
    for path in list_images(folder, problems, split):
        match = pattern.search(path.name)
        try:
            if match is None:
                raise ValueError(f"does not match {pattern.pattern!r}")
            pid = int(match.group("pid"))
            camid = int(match.group("cam")) - cam_base
            view = match.groupdict().get("view")
            viewid = int(view) if view is not None else 0
            if camid < 0:
                raise ValueError(f"camera {match.group('cam')} is below cam_base {cam_base}")
            if pid < -1:
                raise ValueError(f"pid {pid} is negative (only -1, junk, is allowed)")
        except ValueError as err:
            problems.append(
                Problem("warning", "unparsed name", f"{path.name}: {err}", split, str(path))
            )
            continue
        if pid == -1:
            continue
        records.append(ImageRecord(str(path.resolve()), pid, camid, viewid))
    return records


def parse_split_folders(
    name: str,
    root: Path,
    split_dirs: dict[str, str],
    layout: str,
    problems: list[Problem],
    pattern: re.Pattern[str] = MARKET_PATTERN,
) -> dict[str, list[ImageRecord]]:
    """Records per split from one folder each, train ids relabelled. The train folder may be
    missing: test-only datasets (CUHK01, VIPeR, PRID, GRID as shipped for cross-domain tests)
    are query and gallery alone, and still evaluate (`load_dataset` reports the empty train
    split as a warning; only training asks for it)."""
    require_dirs(name, root, [d for s, d in split_dirs.items() if s != "train"], layout)
    splits = {
        split: parse_named_folder(root / d, split, problems, pattern) if (root / d).is_dir()
        else []
        for split, d in split_dirs.items()
    }
    splits["train"] = relabel(splits.get("train", []))
    return splits


def relabel(records: list[ImageRecord]) -> list[ImageRecord]:
    """Map the original train ids to 0..n-1 in sorted order (stable across runs)."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [replace(r, pid=mapping[r.pid]) for r in records]


def make_dataset(
    name: str, root: Path, splits: dict[str, list[ImageRecord]], num_views: int = 1
) -> ReidDataset:
    """A dataset whose camera count covers every camera id seen in any split."""
    cams = [r.camid for records in splits.values() for r in records]
    views = [r.viewid for records in splits.values() for r in records]
    return ReidDataset(
        name=name,
        root=root,
        splits=splits,
        num_cams=max(cams, default=0) + 1,
        num_views=max(num_views, max(views, default=0) + 1),
    )
