"""VeRi-776 vehicles: 20 cameras, viewpoint ids from the keypoint files."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from reidcli.data.listfile import read_lines
from reidcli.data.parsers.common import (
    make_dataset,
    parse_split_folders,
)
from reidcli.data.problems import Problem
from reidcli.data.records import ImageRecord, ReidDataset
from reidcli.data.registry import DatasetInfo, register

log = logging.getLogger(__name__)

NUM_VIEWS = 8
PATTERN = re.compile(r"(?P<pid>[-\d]+)_c(?P<cam>\d+)")
SPLIT_DIRS = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
KEYPOINT_FILES = ("keypoint_train.txt", "keypoint_test.txt")

LAYOUT = """\
  ROOT/
    image_train/  0001_c001_00016450_0.jpg ...  (vehicle_c<camera>_...; optional: test-only)
    image_query/  image_test/
    keypoint_train.txt  keypoint_test.txt   optional: `IMAGE x1 y1 v1 ... VIEW` per line,
                                            the last field is the viewpoint (0-7)"""


def _read_views(root: Path, problems: list[Problem]) -> dict[str, int] | None:
    """Viewpoint per image file name, from the keypoint files in the dataset root.

    The files are looked up relative to `root` only: the reference code opened them relative
    to the working directory, which silently read the wrong (or no) file.
    """
    views: dict[str, int] = {}
    found = False
    for name in KEYPOINT_FILES:
        path = root / name
        if not path.is_file():
            msg = f"{name} not found in {root}: its images get viewpoint 0"
            log.warning("veri776: %s", msg)
            problems.append(Problem("warning", "no keypoint file", msg, path=str(path)))
            continue
        found = True
        for lineno, line in read_lines(path, "veri776"):
            fields = line.split()
            if not fields:
                continue
            try:
                views[os.path.basename(fields[0])] = int(fields[-1])
            except ValueError:
                problems.append(
                    Problem(
                        "warning",
                        "bad keypoint line",
                        f"{name} line {lineno}: last field is not a viewpoint",
                        path=str(path),
                    )
                )
    return views if found else None


def _with_views(
    records: list[ImageRecord], views: dict[str, int], split: str, problems: list[Problem]
) -> list[ImageRecord]:
    out: list[ImageRecord] = []
    unlabelled: list[str] = []
    for r in records:
        name = os.path.basename(r.path)
        if name not in views:
            unlabelled.append(name)
        out.append(ImageRecord(r.path, r.pid, r.camid, views.get(name, 0)))
    if unlabelled:
        problems.append(
            Problem(
                "warning",
                "no viewpoint",
                f"{len(unlabelled)} image(s) have no viewpoint in the keypoint files "
                f"(viewid 0), e.g. {unlabelled[0]}",
                split,
            )
        )
    return out


def parse_veri776(root: Path, problems: list[Problem]) -> ReidDataset:
    splits = parse_split_folders("veri776", root, SPLIT_DIRS, LAYOUT, problems, PATTERN)
    views = _read_views(root, problems)
    if views is None:
        return make_dataset("veri776", root, splits)
    splits = {s: _with_views(recs, views, s, problems) for s, recs in splits.items()}
    return make_dataset("veri776", root, splits, num_views=NUM_VIEWS)


register(
    DatasetInfo(
        name="veri776",
        description="VeRi-776 vehicles: 20 cameras, 8 viewpoints",
        parse=parse_veri776,
        layout=LAYOUT,
        folders=("VeRi", "VeRi-776", "veri776", "veri", "VeRi776"),
        markers=tuple(SPLIT_DIRS.values()),
        aliases=("veri",),
    )
)
