"""Bank -> distance file: what `reid rerank` does, usable from Python."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from reidcli.retrieval.bank import check_comparable, read_bank
from reidcli.retrieval.distances import (
    DEFAULT_CHUNK_BYTES,
    Metric,
    prepare_features,
)
from reidcli.retrieval.distfile import (
    Labels,
    distance_file_bytes,
    is_distance_file,
    write_distances,
)
from reidcli.retrieval.evaluate import feature_blocks
from reidcli.retrieval.expansion import expand
from reidcli.retrieval.rerank import RerankParams, rerank_blocks
from reidcli.runtime.device import resolve_device
from reidcli.utils.diskerrors import check_free_space
from reidcli.utils.outputs import Output, claim_output


def rerank_bank(
    bank_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    params: RerankParams | None = RerankParams(),
    *,
    metric: Metric = "cosine",
    qe: int = 0,
    dba: int = 0,
    query_split: str = "query",
    gallery_split: str = "gallery",
    device: str | torch.device | None = "cpu",
    budget: int = DEFAULT_CHUNK_BYTES,
    overwrite: bool = False,
) -> Path:
    """Write the (re-ranked, unless `params` is None) query x gallery distances of a bank.

    `output` may not be the bank, nor an existing file other than a distance file unless
    `overwrite`; it is locked against a second run while it is written.
    """
    dev = resolve_device(device)
    claim = claim_output(Output(output, "`reid rerank` (a distance file)", ours=is_distance_file,
                                inputs=[bank_path], overwrite=overwrite))
    with claim, read_bank(bank_path) as bank:
        qs, gs = bank[query_split], bank[gallery_split]
        check_comparable(qs, gs, bank_path)
        q_labels = Labels(np.asarray(qs.pids), np.asarray(qs.camids), qs.read_paths())
        g_labels = Labels(np.asarray(gs.pids), np.asarray(gs.camids), gs.read_paths())
        check_free_space(output, distance_file_bytes(q_labels, g_labels))
        q = prepare_features(qs.read_features(), metric, dev)
        g = prepare_features(gs.read_features(), metric, dev)
        q, g = expand(q, g, qe=qe, dba=dba, metric=metric, budget=budget)
        blocks = (rerank_blocks(q, g, params, budget) if params is not None
                  else feature_blocks(q, g, budget))
        attrs: dict[str, object] = {"metric": metric, "qe": qe, "dba": dba,
                                    "source": str(bank_path)}
        if params is not None:
            attrs.update(params.to_dict())
        return write_distances(output, blocks, q_labels, g_labels, attrs)
