"""Named places below a folder, declared as one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, overload


class _Rooted(Protocol):
    root: Path


class Under:
    """A path attribute of an object that has a `root` folder: in its class,
    `market = Under("data", "market")` makes `obj.market` read `obj.root / "data" / "market"`,
    so a layout is written as a table of names and nothing else."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, obj: None, owner: Any = None) -> Under: ...
    @overload
    def __get__(self, obj: _Rooted, owner: Any = None) -> Path: ...
    def __get__(self, obj: _Rooted | None, owner: Any = None) -> Path | Under:
        return self if obj is None else obj.root.joinpath(*self.parts)
