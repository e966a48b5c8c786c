"""The `reid ...` command equivalent to a library call, built together with its settings.

Each option is declared once: the same declaration prints the flag and records the value the
library call receives, so the printed command cannot drift from what the demo runs.
"""

from __future__ import annotations

import os
import shlex
from typing import Any


def format_value(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


class Command:
    """`reid SUBCOMMAND ...` plus the {field: value} settings its options stand for."""

    def __init__(self, *subcommand: str) -> None:
        self.argv: list[str] = ["reid", *subcommand]
        self.values: dict[str, Any] = {}

    def arg(self, value: Any) -> Command:
        self.argv.append(format_value(value))
        return self

    def opt(self, flag: str, field: str | None, value: Any) -> Command:
        """`flag value`; recorded as `field` (None: printed only, the caller maps it)."""
        if value is None:
            return self
        self.argv += [flag, format_value(value)]
        if field is not None:
            self.values[field] = value
        return self

    def switch(self, flag: str, field: str | None = None, value: bool = True) -> Command:
        """A flag without a value (`--resume`, `--rerank`)."""
        self.argv.append(flag)
        if field is not None:
            self.values[field] = value
        return self

    @property
    def text(self) -> str:
        return shlex.join(self.argv)
