"""`folder`: any folder of split subfolders whose file names carry pid and camera."""

from __future__ import annotations

import re
from pathlib import Path

from reidcli.data.parsers.common import MARKET_PATTERN, make_dataset, parse_named_folder, relabel
from reidcli.data.parsers.market import SPLIT_DIRS
from reidcli.data.problems import Problem
from reidcli.data.records import ImageRecord, ReidDataset
from reidcli.data.registry import DatasetInfo, DatasetOption, register
from reidcli.errors import DatasetError

FOLDER_LAYOUT = """\
  PATH/  any of
    bounding_box_train/ (train, ids relabelled)  query/  bounding_box_test/ (gallery)
  file names matched by a regex with named groups `pid` and `cam` (optional `view`);
  default: Market names `<pid>_c<cam>...`, cameras numbered from 1 (option cam_base)"""


def parse_folder(
    root: Path,
    problems: list[Problem],
    pattern: str | None = None,
    cam_base: int = 1,
    train: str = SPLIT_DIRS["train"],
    query: str = SPLIT_DIRS["query"],
    gallery: str = SPLIT_DIRS["gallery"],
) -> ReidDataset:
    regex = _compile(pattern) if pattern else MARKET_PATTERN
    dirs = {"train": train, "query": query, "gallery": gallery}
    present = {split: d for split, d in dirs.items() if (root / d).is_dir()}
    if not present:
        raise DatasetError(
            f"folder at {root}: none of {', '.join(dirs.values())} exists. "
            f"Expected layout:\n{FOLDER_LAYOUT}"
        )
    splits: dict[str, list[ImageRecord]] = {
        split: parse_named_folder(root / d, split, problems, regex, cam_base)
        for split, d in present.items()
    }
    if "train" in splits:
        splits["train"] = relabel(splits["train"])
    return make_dataset("folder", root, splits)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise DatasetError(f"folder: invalid regex {pattern!r}: {err}") from None
    missing = {"pid", "cam"} - set(regex.groupindex)
    if missing:
        raise DatasetError(
            f"folder: the regex {pattern!r} needs named groups (?P<pid>...) and (?P<cam>...); "
            f"missing: {', '.join(sorted(missing))}"
        )
    return regex


register(
    DatasetInfo(
        name="folder",
        description="Your own split folders: Market names or a regex",
        parse=parse_folder,
        layout=FOLDER_LAYOUT,
        markers=tuple(SPLIT_DIRS.values()),
        options={
            "pattern": DatasetOption(str, None, "regex with named groups pid and cam (search)"),
            "cam_base": DatasetOption(int, 1, "camera number of the first camera in names"),
            "train": DatasetOption(str, SPLIT_DIRS["train"], "train folder name"),
            "query": DatasetOption(str, SPLIT_DIRS["query"], "query folder name"),
            "gallery": DatasetOption(str, SPLIT_DIRS["gallery"], "gallery folder name"),
        },
    )
)
