"""Range checks on user options: each fails with a one-line error naming the option.

Options come as `(name, value)` pairs, the name as the user types it (`--per-video`), and
are checked in order; a `None` value is an option not given and passes. `error` is the
`ReidError` subclass of the stage (e.g. `SynthError`), so the CLI prints it as its own.
"""

from __future__ import annotations

from collections.abc import Callable

from reidcli.errors import ReidError

Named = tuple[str, float | None]


def _first_failing(options: tuple[Named, ...], ok: Callable[[float], bool], says: str,
                   error: type[ReidError]) -> None:
    for name, value in options:
        if value is not None and not ok(value):
            raise error(f"{name} {says}, got {value}")


def at_least(minimum: float, *options: Named, error: type[ReidError] = ReidError) -> None:
    """`NAME must be at least MINIMUM, got VALUE` for the first option below `minimum`."""
    _first_failing(options, lambda v: v >= minimum, f"must be at least {minimum}", error)


def non_negative(*options: Named, error: type[ReidError] = ReidError) -> None:
    """`NAME must not be negative, got VALUE` for the first negative option."""
    _first_failing(options, lambda v: v >= 0, "must not be negative", error)


def in_unit_interval(*options: Named, what: str = "fraction",
                     error: type[ReidError] = ReidError) -> None:
    """`NAME is a WHAT in [0, 1], got VALUE` for the first option outside [0, 1]."""
    _first_failing(options, lambda v: 0.0 <= v <= 1.0, f"is a {what} in [0, 1]", error)
