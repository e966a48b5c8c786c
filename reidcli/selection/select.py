"""From scores to the CFS list: sort descending, keep the top, write the plain-text list.

The list is what `reid pretrain --subset LIST` (the luperson parser) reads: one image path
per line relative to the source root, best first, `#` lines ignored. `head -n` therefore
takes the best images and `grep -vc '^#'` counts them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from reidcli.data.parsers.luperson import kept_count
from reidcli.errors import ReidError
from reidcli.utils.checks import at_least
from reidcli.utils.io import atomic_path

_WRITE_BLOCK = 65536


class PathList(Protocol):
    """What the list functions need of a path collection (a list or a `PathTable`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> str: ...


def count_to_keep(total: int, keep: float | None = None, keep_count: int | None = None) -> int:
    """How many of `total` scored images the selection keeps.

    A fraction rounds half up, exactly as `pretrain --keep` cuts a list (50% of 4,180,243
    is the published 2,090,122), so `--keep F` here and there agree.
    """
    if (keep is None) == (keep_count is None):
        raise ReidError("give exactly one of --keep FRACTION and --keep-count N")
    if total < 1:
        raise ReidError("there are no scored images to select from")
    if keep is not None:
        if not 0.0 < keep <= 1.0:
            raise ReidError(f"--keep must be a fraction in (0, 1] (1 keeps everything), "
                            f"got {keep}")
        return kept_count(total, keep, None)
    assert keep_count is not None
    at_least(1, ("--keep-count", keep_count))
    if keep_count > total:
        raise ReidError(f"--keep-count {keep_count} is more than the {total} source images; "
                        f"use --keep 1 to keep them all")
    return keep_count


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices from the highest score down; ties keep source order (a stable sort)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def check_listable(paths: PathList) -> None:
    """Fail early on paths the list format cannot carry (whitespace ends a path, `#` is a
    comment), before hours of scoring are spent on them."""
    bad = next((p for p in map(paths.__getitem__, range(len(paths)))
                if p.startswith("#") or any(c.isspace() for c in p)), None)
    if bad is not None:
        raise ReidError(f"source image path {bad!r} contains whitespace or starts with '#': "
                        "the list format (one path per line) cannot represent it; rename it")


@dataclass
class Selection:
    order: np.ndarray
    """Indices of the kept images, best first."""
    total: int
    cutoff: float
    """Score of the last kept image."""

    @property
    def kept(self) -> int:
        return len(self.order)


def select(scores: np.ndarray, keep: float | None = None,
           keep_count: int | None = None) -> Selection:
    n = count_to_keep(len(scores), keep, keep_count)
    order = ranking(scores)[:n]
    return Selection(order, len(scores), float(scores[order[-1]]))


LIST_TITLE = "# reid cfs-filter: "


def is_cfs_list(path: Path) -> bool:
    """Whether `path` is a list written by `write_list` (which may be replaced)."""
    try:
        with path.open("rb") as f:
            return f.read(len(LIST_TITLE)) == LIST_TITLE.encode()
    except OSError:
        return False


def write_list(path: str | os.PathLike[str], paths: PathList, order: np.ndarray,
               header: Mapping[str, object]) -> None:
    """`paths[order]` one per line under `# key: value` header lines, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        f.write(f"{LIST_TITLE}source images ranked by catastrophic forgetting score, "
                "best first\n")
        for key, value in header.items():
            f.write(f"# {key}: {value}\n")
        for start in range(0, len(order), _WRITE_BLOCK):
            block = order[start:start + _WRITE_BLOCK]
            f.write("".join(paths[i] + "\n" for i in block.tolist()))
