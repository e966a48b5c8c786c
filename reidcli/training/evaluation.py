"""Periodic evaluation during fine-tuning: in-memory query/gallery features -> retrieval metrics.

Features are the model's eval-mode test features; the retrieval layer compares them with
the cosine metric (L2-normalised squared euclidean, as the reference evaluator does with
FEAT_NORM 'yes'), under the Market-1501 protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from reidcli.data.records import ImageRecord


@dataclass
class SplitFeatures:
    feats: torch.Tensor  # (N, D) float32 on CPU, not normalised
    pids: np.ndarray
    camids: np.ndarray


def make_eval_loader(
    records: Sequence[ImageRecord], transform, batch_size: int, workers: int, pin: bool
) -> DataLoader:
    from reidcli.data.torch_dataset import ReidImageDataset

    return DataLoader(
        ReidImageDataset(records, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin,
        # Its own generator: building the iterator must not draw from the global RNG, or
        # evaluating would change the training randomness that follows it.
        generator=torch.Generator().manual_seed(0),
    )


def extract(
    model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None,
    cam_offset: int | None = 0,
) -> SplitFeatures:
    """Test features of every batch of `loader`; the model's train/eval mode is restored.
    The model sees camera ids shifted by `cam_offset` (a joint model's range of this
    dataset; None = unknown); the returned ids are the dataset's own."""
    from reidcli.data.joint import shift_cameras
    from reidcli.inference.features import FeatureExtractor

    was_training = model.training
    feats, pids, camids = [], [], []
    try:
        extractor = FeatureExtractor(model, device, amp_dtype)
        for imgs, pid, camid, viewid, _ in loader:
            feats.append(extractor(imgs, shift_cameras(camid, cam_offset), viewid))
            pids.append(pid.numpy())
            camids.append(camid.numpy())
    finally:
        model.train(was_training)
    return SplitFeatures(
        torch.cat(feats) if feats else torch.empty(0, 0),
        np.concatenate(pids) if pids else np.empty(0, dtype=np.int64),
        np.concatenate(camids) if camids else np.empty(0, dtype=np.int64),
    )


def retrieval_metrics(
    query: SplitFeatures, gallery: SplitFeatures, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """mAP, CMC ranks 1/5/10 and mINP of the query set against the gallery (the retrieval
    layer's chunked evaluation, the same code as `reid evaluate`)."""
    from reidcli.retrieval import EvalOptions, evaluate_features

    result = evaluate_features(
        query.feats, gallery.feats,
        query.pids, query.camids, gallery.pids, gallery.camids,
        options=EvalOptions(max_rank=10), device=device,
    )
    return {
        "mAP": float(result.mAP),
        "R1": float(result.rank1),
        "R5": float(result.rank5),
        "R10": float(result.rank10),
        "mINP": float(result.mINP),
    }
