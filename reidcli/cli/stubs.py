"""Stages that later issues implement. They accept any options and say so clearly."""

from __future__ import annotations

from reidcli.cli.common import not_implemented

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def cfs_filter() -> None:
    not_implemented("cfs-filter", 6)


def demo() -> None:
    not_implemented("demo", 7)
