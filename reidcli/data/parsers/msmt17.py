"""MSMT17 from its list files (V1 layout; V2 is read too, with a warning)."""

from __future__ import annotations

import logging
from pathlib import Path

from reidcli.data.listfile import DUPLICATES_OPTION, contained, handle_duplicates, read_lines
from reidcli.data.parsers.common import make_dataset, relabel, require_dirs, require_file
from reidcli.data.problems import Problem
from reidcli.data.records import ImageRecord, ReidDataset
from reidcli.data.registry import DatasetInfo, register

log = logging.getLogger(__name__)

LAYOUT = """\
  ROOT/  (MSMT17_V1)
    train/0000/0000_000_01_0303morning_0015_0.jpg ...   (camera = third `_` field)
    test/0000/0000_000_01_0303morning_0016_0.jpg ...
    list_train.txt  list_val.txt     lines `0000/0000_000_01_...jpg 0` under train/
    list_query.txt  list_gallery.txt lines `0000/...jpg 0` under test/
  (V2: mask_train_v2/ and mask_test_v2/ instead of train/ and test/)"""

V2_WARNING = (
    "MSMT17 V2 layout detected (mask_train_v2/): published results use V1, and V2 costs "
    "about 4 mAP; results will not be comparable to papers"
)


def _read_list(
    list_path: Path, image_dir: Path, split: str, problems: list[Problem], duplicates: str
) -> list[ImageRecord]:
    """Records from `RELPATH PID` lines; files are not stat'ed here (`check` opens them)."""
    records: list[ImageRecord] = []
    linenos: list[int] = []
    for lineno, line in read_lines(list_path, "msmt17"):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{list_path.name} line {lineno}"
        try:
            rel, pid_text = fields[0], fields[1]
            pid = int(pid_text)
            cam_text = Path(rel).name.split("_")[2]
            camid = int(cam_text) - 1
        except (IndexError, ValueError):
            problems.append(
                Problem(
                    "error",
                    "bad list line",
                    f"{where}: expected `DIR/ID_IDX_CAM_..._.jpg PID`, got {line.strip()!r}",
                    split,
                    str(list_path),
                )
            )
            continue
        if camid < 0 or pid < 0:
            problems.append(
                Problem(
                    "error",
                    "bad list line",
                    f"{where}: negative id or camera 0",
                    split,
                    str(list_path),
                )
            )
            continue
        path = contained(str(image_dir), rel, f"msmt17: {list_path} line {lineno}")
        records.append(ImageRecord(path, pid, camid))
        linenos.append(lineno)
    return handle_duplicates(records, [r.path for r in records], linenos, duplicates,
                             list_path, problems, split)


def parse_msmt17(
    root: Path, problems: list[Problem], duplicates: str = DUPLICATES_OPTION.default
) -> ReidDataset:
    root = root.resolve()
    if (root / "mask_train_v2").is_dir():
        log.warning(V2_WARNING)
        problems.append(Problem("warning", "msmt17 v2", V2_WARNING, path=str(root)))
        train_dir, test_dir = "mask_train_v2", "mask_test_v2"
    else:
        train_dir, test_dir = "train", "test"
    require_dirs("msmt17", root, (train_dir, test_dir), LAYOUT)
    for name in ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"):
        require_file("msmt17", root / name, LAYOUT)

    def read(name: str, folder: str, split: str) -> list[ImageRecord]:
        return _read_list(root / name, root / folder, split, problems, duplicates)

    # list_val holds more images of the train identities; the published protocol trains on both.
    train = read("list_train.txt", train_dir, "train") + read("list_val.txt", train_dir, "train")
    splits = {
        "train": relabel(train),
        "query": read("list_query.txt", test_dir, "query"),
        "gallery": read("list_gallery.txt", test_dir, "gallery"),
    }
    return make_dataset("msmt17", root, splits)


register(
    DatasetInfo(
        name="msmt17",
        description="MSMT17 (V1 lists; V2 warned): 1,041 train ids, 15 cameras",
        parse=parse_msmt17,
        layout=LAYOUT,
        folders=("MSMT17_V1", "MSMT17", "msmt17", "MSMT17_V2"),
        markers=("list_train.txt",),
        aliases=("msmt",),
        options={"duplicates": DUPLICATES_OPTION},
    )
)
