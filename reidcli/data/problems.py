"""Problems a parser or a check finds: collected and reported instead of crashing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a dataset.

    `error`: data that should be usable is not (an unreadable image, a broken list file, an
    empty split). `warning`: the dataset is usable but something was skipped or will not
    count (a file name that does not parse, a query id absent from the gallery).
    """

    severity: Severity
    kind: str
    message: str
    split: str | None = None
    path: str | None = None


def count_errors(problems: list[Problem]) -> int:
    return sum(1 for p in problems if p.severity == "error")
