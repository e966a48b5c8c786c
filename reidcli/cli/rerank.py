"""`reid rerank` (placeholder module, filled in by the retrieval layer)."""

from reidcli.cli.common import not_implemented


def rerank() -> None:
    not_implemented("rerank", 3)
