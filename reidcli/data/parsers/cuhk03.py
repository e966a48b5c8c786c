"""CUHK03 under the new (767/700) protocol, labeled or detected boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reidcli.data.parsers.common import make_dataset, relabel
from reidcli.data.parsers.market import parse_market_layout
from reidcli.data.problems import Problem
from reidcli.data.records import ImageRecord, ReidDataset
from reidcli.data.registry import DatasetInfo, DatasetOption, register
from reidcli.errors import DatasetError

VARIANTS = ("labeled", "detected")

LAYOUT = """\
  either the Market-style conversion (CUHK03-NP):
    ROOT/labeled/{bounding_box_train,query,bounding_box_test}/0001_c1_1.png ...
    ROOT/detected/{bounding_box_train,query,bounding_box_test}/...
  or images extracted from cuhk-03.mat plus the new-protocol split files:
    ROOT/images_labeled/1_001_1_01.png ...   ROOT/images_detected/...
    ROOT/cuhk03_new_protocol_config_labeled.mat  ROOT/cuhk03_new_protocol_config_detected.mat
  choose the boxes with the option variant=labeled|detected (default labeled)"""


def _from_config(root: Path, variant: str) -> ReidDataset:
    """Read the protocol's .mat: filelist, labels, camId and 1-based train/query/gallery_idx."""
    from scipy.io import loadmat

    config = root / f"cuhk03_new_protocol_config_{variant}.mat"
    try:
        mat = loadmat(config)
        files = [str(np.asarray(f).reshape(-1)[0]) for f in np.asarray(mat["filelist"]).ravel()]
        labels = np.asarray(mat["labels"]).ravel().astype(int)
        cams = np.asarray(mat["camId"]).ravel().astype(int)
        index = {
            split: np.asarray(mat[f"{split}_idx"]).ravel().astype(int) - 1
            for split in ("train", "query", "gallery")
        }
    except (OSError, ValueError, KeyError, IndexError) as err:
        raise DatasetError(f"cuhk03: cannot read {config}: {err}") from None
    image_dir = root / f"images_{variant}"
    splits = {
        split: [
            ImageRecord(str(image_dir / files[i]), int(labels[i]), int(cams[i]) - 1) for i in idx
        ]
        for split, idx in index.items()
    }
    splits["train"] = relabel(splits["train"])
    return make_dataset("cuhk03", root, splits)


def parse_cuhk03(root: Path, problems: list[Problem], variant: str = "labeled") -> ReidDataset:
    if variant not in VARIANTS:
        raise DatasetError(f"cuhk03: variant must be labeled or detected, got {variant!r}")
    if (root / variant).is_dir():
        dataset = parse_market_layout("cuhk03", root / variant, problems, LAYOUT)
        dataset.root = root
        return dataset
    if (root / f"cuhk03_new_protocol_config_{variant}.mat").is_file():
        if not (root / f"images_{variant}").is_dir():
            raise DatasetError(
                f"cuhk03 at {root}: images_{variant}/ is missing (extract the images from "
                f"cuhk-03.mat first). Expected layout:\n{LAYOUT}"
            )
        return _from_config(root, variant)
    raise DatasetError(
        f"cuhk03 at {root}: neither {variant}/ nor cuhk03_new_protocol_config_{variant}.mat "
        f"found. Expected layout:\n{LAYOUT}"
    )


register(
    DatasetInfo(
        name="cuhk03",
        description="CUHK03 new protocol: 767 train ids, labeled or detected",
        parse=parse_cuhk03,
        layout=LAYOUT,
        folders=("cuhk03-np", "cuhk03_np", "CUHK03-NP", "cuhk03", "CUHK03"),
        markers=(
            "labeled",
            "detected",
            "cuhk03_new_protocol_config_labeled.mat",
            "cuhk03_new_protocol_config_detected.mat",
        ),
        options={"variant": DatasetOption(str, "labeled", "labeled or detected boxes")},
        aliases=("cuhk03_np",),
    )
)
