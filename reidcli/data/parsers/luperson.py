"""LUPerson-style unlabeled images: a folder scanned recursively, or a list file."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from reidcli.data.listfile import DUPLICATES_OPTION, contained, handle_duplicates, read_lines
from reidcli.data.parsers.common import make_dataset, walk_images
from reidcli.data.problems import Problem
from reidcli.data.records import ImageRecord, ReidDataset
from reidcli.data.registry import DatasetInfo, DatasetOption, register
from reidcli.errors import DatasetError

log = logging.getLogger(__name__)

LIST_NAMES = ("list.txt", "images.txt")
"""A list file with one of these names in the root is used instead of scanning the tree."""

LAYOUT = """\
  ROOT/ any tree of images (scanned recursively, sorted), or
  ROOT/list.txt (or images.txt, or luperson:PATH/TO/LIST.txt): one image path per line,
  relative to the list's folder (and inside it); extra fields after the path and `#` lines
  are ignored.
  Options: subset=LIST (an ordered list, e.g. from `reid cfs-filter`, relative to ROOT),
  keep=F (keep the first fraction F of the list), keep_first=N (keep the first N),
  duplicates=drop|keep|error (repeated lines; dropped and reported by default)."""


def read_list(path: Path) -> list[tuple[int, str]]:
    """(line number, image path) of each entry of a list file, in file order."""
    out: list[tuple[int, str]] = []
    for lineno, line in read_lines(path, "luperson"):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((lineno, line.split()[0]))
    return out


def list_paths(
    list_file: Path, base: Path, problems: list[Problem], duplicates: str = "drop"
) -> list[str]:
    """Absolute image paths of a list whose entries are relative to `base` (and must stay
    inside it), repeated entries handled as `duplicates` says."""
    entries = read_list(list_file)
    entries = handle_duplicates(entries, [name for _, name in entries],
                                [n for n, _ in entries], duplicates, list_file, problems)
    root = str(base.absolute())
    return [contained(root, name, f"luperson: {list_file} line {lineno}")
            for lineno, name in entries]


def kept_count(total: int, keep: float | None, keep_first: int | None) -> int:
    """How many leading entries survive `keep` (fraction) or `keep_first` (count).

    Fractions round half up (50% of 4,180,243 keeps 2,090,122, the published count).
    """
    if keep is not None and keep_first is not None:
        raise DatasetError("luperson: give keep (a fraction) or keep_first (a count), not both")
    if keep is not None:
        if not 0.0 < keep <= 1.0:
            raise DatasetError(f"luperson: keep must be a fraction in (0, 1], got {keep}")
        return min(total, max(1, math.floor(keep * total + 0.5)))
    if keep_first is not None:
        if keep_first < 1:
            raise DatasetError(f"luperson: keep_first must be at least 1, got {keep_first}")
        return min(total, keep_first)
    return total


def _resolve_subset(subset: str, root: Path) -> Path:
    # A subset list is a user's own file: take it as given (absolute or from the working
    # directory) and fall back to the dataset root, where cfs-filter outputs often live.
    given = Path(subset).expanduser()
    for candidate in (given, root / given):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"luperson: subset list {subset} not found (also tried under {root})")


def parse_luperson(
    root: Path,
    problems: list[Problem],
    subset: str | None = None,
    keep: float | None = None,
    keep_first: int | None = None,
    duplicates: str = DUPLICATES_OPTION.default,
) -> ReidDataset:
    if root.is_file():
        list_file: Path | None = root
        root = root.parent
    else:
        list_file = next((root / n for n in LIST_NAMES if (root / n).is_file()), None)
    if subset is not None:
        list_file = _resolve_subset(subset, root)

    if list_file is not None:
        # The fast path: millions of images, never walk the tree or stat the files.
        base = root if subset is not None else list_file.parent
        listed = list_paths(list_file, base, problems, duplicates)
        n = kept_count(len(listed), keep, keep_first)
        paths = listed[:n]
        log.info("luperson: %d of %d images from %s", n, len(listed), list_file)
    else:
        if not root.is_dir():
            raise DatasetError(f"luperson: {root} is not a folder. Expected layout:\n{LAYOUT}")
        found = walk_images(root)
        n = kept_count(len(found), keep, keep_first)
        paths = [str(p.absolute()) for p in found[:n]]
    records = [ImageRecord(p, -1, 0) for p in paths]
    return make_dataset("luperson", root.absolute(), {"train": records})


register(
    DatasetInfo(
        name="luperson",
        description="Unlabeled images for pre-training: folder or list",
        parse=parse_luperson,
        layout=LAYOUT,
        folders=("LUPerson", "luperson", "LUP", "lup"),
        markers=(".",),
        options={
            "subset": DatasetOption(str, None, "ordered list of images to use (relative paths)"),
            "keep": DatasetOption(float, None, "keep this leading fraction of the list"),
            "keep_first": DatasetOption(int, None, "keep this many leading entries"),
            "duplicates": DUPLICATES_OPTION,
        },
        aliases=("lup",),
    )
)
