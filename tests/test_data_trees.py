"""Tiny dataset trees in each dataset's exact layout, written by the data tests.

Helpers only (no tests here); `test_data_*.py` import them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

MARKET_TRAIN = [
    "0010_c6s2_000003_01.jpg",
    "0002_c1s1_000451_03.jpg",
    "0007_c2s1_000001_01.jpg",
    "0007_c3s1_000002_01.jpg",
]
MARKET_QUERY = ["0001_c1s1_001051_00.jpg", "0003_c2s1_000001_00.jpg"]
MARKET_GALLERY = [
    "0001_c2s1_000100_01.jpg",
    "0003_c1s1_000002_01.jpg",
    "0000_c3s1_000000_01.jpg",  # distractor: kept
    "-1_c1s1_000000_01.jpg",  # junk: dropped
    "badname.jpg",  # does not parse: reported
]


def write_image(path: Path, colour: tuple[int, int, int] = (120, 60, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 16), colour).save(path, quality=90)
    return path


def write_market(root: Path) -> Path:
    for folder, names in (
        ("bounding_box_train", MARKET_TRAIN),
        ("query", MARKET_QUERY),
        ("bounding_box_test", MARKET_GALLERY),
    ):
        for name in names:
            write_image(root / folder / name)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")
    return root


def write_msmt17(root: Path, v2: bool = False) -> Path:
    train_dir, test_dir = ("mask_train_v2", "mask_test_v2") if v2 else ("train", "test")
    lists = {
        "list_train.txt": (
            train_dir,
            [
                ("0005/0005_000_01_0303morning_0015_0.jpg", 5),
                ("0001/0001_003_14_0303noon_0100_1.jpg", 1),
            ],
        ),
        "list_val.txt": (train_dir, [("0005/0005_001_15_0303afternoon_0020_0.jpg", 5)]),
        "list_query.txt": (test_dir, [("0000/0000_000_02_0303morning_0016_0.jpg", 0)]),
        "list_gallery.txt": (
            test_dir,
            [
                ("0000/0000_001_03_0303morning_0017_0.jpg", 0),
                ("0002/0002_000_07_0303noon_0001_2.jpg", 2),
            ],
        ),
    }
    for list_name, (image_dir, entries) in lists.items():
        for rel, _ in entries:
            write_image(root / image_dir / rel)
        lines = [f"{rel} {pid}" for rel, pid in entries]
        (root / list_name).write_text("\n".join(lines) + "\n")
    return root


VERI_FILES = {
    "image_train": ["0001_c001_00016450_0.jpg", "0003_c020_00000100_0.jpg"],
    "image_query": ["0002_c002_00030600_0.jpg"],
    "image_test": ["0002_c005_00030700_0.jpg", "0004_c019_00001000_0.jpg"],
}


def write_veri(root: Path, keypoints: bool = True) -> Path:
    for folder, names in VERI_FILES.items():
        for name in names:
            write_image(root / folder / name)
    if keypoints:
        coords = " ".join(["10 20 1"] * 20)
        (root / "keypoint_train.txt").write_text(
            f"image_train/0001_c001_00016450_0.jpg {coords} 3\n"
            f"/abs/elsewhere/image_train/0003_c020_00000100_0.jpg {coords} 7\n"
        )
        # The query image has no line: it gets viewid 0 and a warning.
        (root / "keypoint_test.txt").write_text(
            f"image_test/0002_c005_00030700_0.jpg {coords} 5\n"
            f"image_test/0004_c019_00001000_0.jpg {coords} 1\n"
        )
    return root
