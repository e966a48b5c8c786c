"""List files (one image path per line): reading them as UTF-8 and checking their entries.

Every list a dataset reads (LUPerson lists and `subset` lists, MSMT17's `list_*.txt`,
VeRi's keypoint files) goes through `read_lines`, so a file that is not UTF-8 is one error
naming the line and byte. Image paths in a list are relative to a root (the list's folder,
the dataset root or an image folder) and must stay inside it (`contained`): `../../x.jpg`,
or an absolute path elsewhere, is refused up front with its line number instead of being
opened when its batch is loaded. Repeated entries are reported and, as the user chooses
(`duplicates=drop|keep|error`), dropped, kept or refused (`handle_duplicates`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from reidcli.data.problems import Problem
from reidcli.data.registry import DatasetOption
from reidcli.errors import DatasetError

DUPLICATE_POLICIES = ("drop", "keep", "error")
DUPLICATES_OPTION = DatasetOption(
    str, "drop", "repeated list lines: drop (default, reported), keep (reported) or error"
)

T = TypeVar("T")


def read_lines(path: Path, who: str) -> list[tuple[int, str]]:
    """(1-based line number, line without its end) of every line of a UTF-8 text file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{who}: cannot read list {path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise DatasetError(
            f"{who}: {path} is not UTF-8 text: line {line}, byte {column} of the line "
            f"(offset {err.start}) is {data[err.start:err.start + 1]!r}; re-save the list as "
            "UTF-8"
        ) from None
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)]


def contained(root: str, name: str, where: str) -> str:
    """The absolute path of list entry `name` (relative to `root`, or absolute), which must
    lie inside `root`; `root` is absolute. `where` names the list and line for the error.

    The test is on the normalised path, without touching the disk (lists hold millions of
    entries): links inside the root are the dataset's own layout and are followed later.
    """
    if not os.path.isabs(name) and ".." not in name:
        return os.path.join(root, name)  # the common case, no normalisation needed
    path = os.path.normpath(os.path.join(root, name))
    if not (path + os.sep).startswith(root.rstrip(os.sep) + os.sep):
        raise DatasetError(
            f"{where}: {name!r} lies outside {root}, the folder list paths are relative to; "
            "lists may only name images inside it"
        )
    return path


def handle_duplicates(
    items: Sequence[T],
    keys: Sequence[str],
    linenos: Sequence[int],
    policy: str,
    list_path: Path,
    problems: list[Problem],
    split: str | None = None,
) -> list[T]:
    """`items` with repeated `keys` dropped, kept or refused as `policy` says; never silent:
    a warning problem names how many lines repeat an earlier one and the first of them."""
    if policy not in DUPLICATE_POLICIES:
        raise DatasetError(
            f"option duplicates={policy!r}: choose one of {', '.join(DUPLICATE_POLICIES)}"
        )
    first_line: dict[str, int] = {}
    repeats: list[int] = []
    for i, (key, lineno) in enumerate(zip(keys, linenos, strict=True)):
        if first_line.setdefault(key, lineno) != lineno:
            repeats.append(i)
    if not repeats:
        return list(items)
    i = repeats[0]
    example = f"line {linenos[i]} repeats line {first_line[keys[i]]} ({keys[i]})"
    if policy == "error":
        raise DatasetError(
            f"{list_path}: {len(repeats)} line(s) repeat an earlier one, e.g. {example}; "
            "remove them or choose the dataset option duplicates=drop or duplicates=keep"
        )
    action = "dropped" if policy == "drop" else "kept (duplicates=keep)"
    problems.append(Problem(
        "warning", "duplicate list line",
        f"{list_path}: {len(repeats)} line(s) repeat an earlier one and were {action}, "
        f"e.g. {example}", split, str(list_path),
    ))
    if policy == "keep":
        return list(items)
    skip = set(repeats)
    return [item for j, item in enumerate(items) if j not in skip]
