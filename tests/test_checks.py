"""`utils/checks.py`: the first bad option is named, in the stage's own error type."""

from __future__ import annotations

import pytest

from reidcli.data.synth import SynthError
from reidcli.errors import ReidError
from reidcli.utils.checks import at_least, in_unit_interval, non_negative


def test_at_least_names_the_first_option_below_the_minimum() -> None:
    at_least(1, ("--a", 1), ("--b", 5), ("--c", None))
    with pytest.raises(ReidError, match=r"^--b must be at least 1, got 0$"):
        at_least(1, ("--a", 3), ("--b", 0), ("--c", -4))


def test_non_negative_accepts_zero_and_skips_options_not_given() -> None:
    non_negative(("--junk", 0), ("--distractors", None))
    with pytest.raises(ReidError, match=r"^--junk must not be negative, got -1$"):
        non_negative(("--junk", -1))


@pytest.mark.parametrize("bad", [-0.01, 1.01])
def test_in_unit_interval_includes_both_ends(bad: float) -> None:
    in_unit_interval(("--p", 0.0), ("--q", 1.0))
    with pytest.raises(ReidError, match=rf"^--q is a probability in \[0, 1\], got {bad}$"):
        in_unit_interval(("--p", 0.5), ("--q", bad), what="probability")


def test_error_type_is_the_callers() -> None:
    with pytest.raises(SynthError):
        at_least(1, ("--images", 0), error=SynthError)
