"""Market-1501 layout datasets: Market-1501, DukeMTMC-reID, Occluded-Duke."""

from __future__ import annotations

from pathlib import Path

from reidcli.data.parsers.common import make_dataset, parse_split_folders
from reidcli.data.problems import Problem
from reidcli.data.records import ReidDataset
from reidcli.data.registry import DatasetInfo, register

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

MARKET_LAYOUT = """\
  ROOT/
    bounding_box_train/   0002_c1s1_000451_03.jpg ...  (pid_c<camera>...; optional: without
                          it the dataset is test-only, for extract/evaluate)
    query/                0001_c1s1_001051_00.jpg ...
    bounding_box_test/    0000_... (distractors), -1_... (junk, dropped)"""


def parse_market_layout(
    name: str, root: Path, problems: list[Problem], layout: str = MARKET_LAYOUT
) -> ReidDataset:
    return make_dataset(name, root, parse_split_folders(name, root, SPLIT_DIRS, layout, problems))


def _market_like(name: str, description: str, folders: tuple[str, ...], aliases=()) -> None:
    def parse(root: Path, problems: list[Problem]) -> ReidDataset:
        return parse_market_layout(name, root, problems)

    register(
        DatasetInfo(
            name=name,
            description=description,
            parse=parse,
            layout=MARKET_LAYOUT,
            folders=folders,
            markers=tuple(SPLIT_DIRS.values()),
            aliases=aliases,
        )
    )


_market_like(
    "market1501",
    "Market-1501: 751 train ids, 6 cameras",
    ("Market-1501-v15.09.15", "market1501", "Market-1501", "market"),
    aliases=("market",),
)
_market_like(
    "dukemtmc",
    "DukeMTMC-reID: 702 train ids, 8 cameras",
    ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid", "dukemtmc", "duke"),
    aliases=("duke", "dukemtmc_reid"),
)
_market_like(
    "occluded_duke",
    "Occluded-DukeMTMC: occluded queries, 8 cameras",
    ("Occluded_Duke", "occluded_duke", "Occluded-Duke", "occluded-duke"),
)
