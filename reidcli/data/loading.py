"""`load_dataset`: spec -> folder -> parser -> records, with options checked up front."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from reidcli.data.problems import Problem
from reidcli.data.records import ReidDataset
from reidcli.data.registry import DatasetInfo
from reidcli.data.roots import parse_spec, resolve_root
from reidcli.errors import DatasetError

log = logging.getLogger(__name__)

TEST_ONLY = "no train split"


def parse_options(pairs: Iterable[str]) -> dict[str, str]:
    """`["pattern=...", "cam_base=0"]` -> {"pattern": "...", "cam_base": "0"} (types are
    converted by `load_dataset` against the dataset's declared options)."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"dataset option must be KEY=VALUE, got {pair!r}")
        options[key.strip()] = value
    return options


def _coerce(info: DatasetInfo, options: dict[str, Any]) -> dict[str, Any]:
    """Check option names and turn CLI strings (`keep=0.5`) into the declared types."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key not in info.options:
            accepted = ", ".join(info.options) or "none"
            raise DatasetError(
                f"dataset {info.name} has no option {key!r} (its options: {accepted})"
            )
        kind = info.options[key].type
        if value is None or type(value) is kind:
            out[key] = value
            continue
        try:
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise DatasetError(
                f"option {key}={value!r} of {info.name} must be a {kind.__name__}"
            ) from None
    return out


def parse_dataset(
    spec: str, data_root: str | os.PathLike[str] | None = None, **options: Any
) -> tuple[ReidDataset, list[Problem]]:
    """Parse a dataset and return it with every problem the parser met (nothing logged)."""
    parsed = parse_spec(spec)
    kwargs = _coerce(parsed.info, options)
    root = resolve_root(parsed, data_root)
    problems: list[Problem] = []
    dataset = parsed.info.parse(Path(root), problems, **kwargs)
    evaluable = bool(dataset.splits.get("query")) and bool(dataset.splits.get("gallery"))
    for split, records in dataset.splits.items():
        if records:
            continue
        if split == "train" and evaluable:
            # Only training needs this split; ReidDataset.train says so when asked for it.
            problems.append(Problem("warning", TEST_ONLY, "split 'train' has no usable image: "
                                    "a test-only dataset, for extract and evaluate", split))
        else:
            problems.append(
                Problem("error", "empty split", f"split {split!r} has no usable image", split)
            )
    return dataset, problems


def load_dataset(
    spec: str, data_root: str | os.PathLike[str] | None = None, **options: Any
) -> ReidDataset:
    """Load `NAME` (searched under the data root) or `NAME:PATH`.

    Skipped files are summarised in one warning; an empty split raises `DatasetError`
    (run `reid datasets check` for the full list of problems).
    """
    dataset, problems = parse_dataset(spec, data_root, **options)
    empty = [p for p in problems if p.kind == "empty split"]
    if empty:
        raise DatasetError(
            f"{dataset.name} at {dataset.root}: "
            + "; ".join(p.message for p in empty)
            + f". Run `reid datasets check {spec}` for details."
        )
    problems = [p for p in problems if p.kind != TEST_ONLY]  # expected when evaluating on it
    if problems:
        first = problems[0]
        log.warning(
            "%s: %d problem(s) while parsing, e.g. %s%s (see `reid datasets check`)",
            dataset.name,
            len(problems),
            first.message,
            f" [{first.path}]" if first.path else "",
        )
    return dataset
