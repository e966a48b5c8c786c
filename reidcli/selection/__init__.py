"""CFS data selection (`reid cfs-filter`): rank source images by how little a model of the
source forgets them when adapted to the target, keep the best.

    from reidcli.selection import CfsOptions, cfs_filter

The pipeline is imported lazily so that `reidcli.selection.select` (list handling) stays
light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reidcli.selection.pipeline import CfsOptions, CfsResult


def cfs_filter(opts: CfsOptions) -> CfsResult | None:
    from reidcli.selection.pipeline import cfs_filter as _cfs_filter

    return _cfs_filter(opts)


def __getattr__(name: str) -> object:
    if name in ("CfsOptions", "CfsResult"):
        from reidcli.selection import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CfsOptions", "CfsResult", "cfs_filter"]
