"""A base for objects that hold an open file: `with obj:` closes it."""

from __future__ import annotations

from typing import Self


class Closing:
    """Gives a class with `close()` the context-manager protocol."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
