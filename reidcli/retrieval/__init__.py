"""Retrieval: feature banks, evaluation, re-ranking and query/database expansion.

Everything here streams in blocks with bounded memory so it scales to MSMT17-sized
galleries on one machine, and runs on whatever torch device the features are on.
"""

from reidcli.retrieval.bank import BankWriter, FeatureBank, Split, read_bank, write_bank
from reidcli.retrieval.distfile import DistanceFile, Labels, read_distances, write_distances
from reidcli.retrieval.evaluate import (
    EvalOptions,
    EvaluationResult,
    evaluate_blocks,
    evaluate_features,
    evaluate_path,
    evaluate_source,
)
from reidcli.retrieval.export import rerank_bank
from reidcli.retrieval.pipeline import Retrieval, Source, bank_source, open_source
from reidcli.retrieval.rerank import RerankParams, rerank, rerank_blocks

__all__ = [
    "BankWriter", "DistanceFile", "EvalOptions", "EvaluationResult", "FeatureBank", "Labels",
    "RerankParams", "Retrieval", "Source", "Split", "bank_source", "evaluate_blocks",
    "evaluate_features", "evaluate_path", "evaluate_source", "open_source", "read_bank",
    "read_distances", "rerank", "rerank_bank", "rerank_blocks", "write_bank",
    "write_distances",
]
