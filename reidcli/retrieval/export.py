"""Bank -> distance file: what `reid rerank` does, usable from Python."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from reidcli.retrieval.distances import DEFAULT_CHUNK_BYTES
from reidcli.retrieval.distfile import distance_file_bytes, is_distance_file, write_distances
from reidcli.retrieval.pipeline import Retrieval, bank_source
from reidcli.retrieval.rerank import RerankParams
from reidcli.runtime.device import resolve_device
from reidcli.utils.diskerrors import check_free_space
from reidcli.utils.outputs import Output, claim_output


def rerank_bank(
    bank_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    retrieval: Retrieval = Retrieval(rerank=RerankParams()),
    *,
    query_split: str = "query",
    gallery_split: str = "gallery",
    device: str | torch.device | None = "cpu",
    budget: int = DEFAULT_CHUNK_BYTES,
    overwrite: bool = False,
) -> Path:
    """Write the query x gallery distances of a bank made by `retrieval` (every gallery item
    kept, unlabelled ones included) into a distance file that records `retrieval`.

    `output` may not be the bank, nor an existing file other than a distance file unless
    `overwrite`; it is locked against a second run while it is written.
    """
    dev = resolve_device(device)
    claim = claim_output(Output(output, "`reid rerank` (a distance file)", ours=is_distance_file,
                                inputs=[bank_path], overwrite=overwrite))
    with claim:
        source = bank_source(bank_path, retrieval, query_split=query_split,
                             gallery_split=gallery_split)
        check_free_space(output, distance_file_bytes(source.query, source.gallery))
        attrs = {**retrieval.to_attrs(), "source": str(bank_path)}
        return write_distances(output, source.blocks(dev, budget), source.query, source.gallery,
                               attrs)
