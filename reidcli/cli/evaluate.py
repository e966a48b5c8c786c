"""`reid evaluate` (placeholder module, filled in by the retrieval layer)."""

from reidcli.cli.common import not_implemented


def evaluate() -> None:
    not_implemented("evaluate", 3)
