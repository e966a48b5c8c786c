"""Periodic evaluation during fine-tuning: in-memory query/gallery features -> retrieval metrics.

Features are the model's eval-mode test features; the retrieval layer compares them with
the cosine metric (L2-normalised squared euclidean, as the reference evaluator does with
FEAT_NORM 'yes'), under the Market-1501 protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


# -- which datasets a fine-tuning run evaluates on -------------------------------------------
@dataclass
class EvalDataset:
    """A dataset evaluated during training; `cam_offset` shifts its cameras into the model's
    SIE range (None: unknown camera, a dataset the model did not train on)."""

    label: str
    dataset: Any
    cam_offset: int | None


@dataclass
class EvalSet:
    label: str
    cam_offset: int | None
    query: DataLoader
    gallery: DataLoader


def eval_datasets(cfg: Any, sources: list[Any], loaded: list[Any]) -> list[EvalDataset]:
    """--eval-data's datasets (a training dataset among them keeps its camera offset),
    else every training dataset with both a query and a gallery split."""
    from reidcli.data import load_dataset
    from reidcli.data.joint import camera_offset, options_for, spec_labels

    trained = {spec: (src, ds) for spec, src, ds in zip(cfg.data, sources, loaded, strict=True)}
    if not cfg.eval_data:
        return [EvalDataset(src.label, ds, src.cam_offset) for src, ds in trained.values()
                if ds.splits.get("query") and ds.splits.get("gallery")]
    joint = len(cfg.data) > 1
    out = []
    for label, spec in zip(spec_labels(cfg.eval_data), cfg.eval_data, strict=True):
        if spec in trained:
            src, ds = trained[spec]
            out.append(EvalDataset(label, ds, src.cam_offset))
        else:
            ds = load_dataset(spec, cfg.data_root, **options_for(cfg.data_options, spec, None))
            # As `reid extract` decides: a joint model knows a dataset's cameras by its
            # folder or name; a one-dataset model takes the ids as they are (as before).
            offset = camera_offset(sources, ds.name, ds.root) if joint else 0
            out.append(EvalDataset(label, ds, offset))
    return out


def evaluation_blocker(evaluated: EvalDataset, allow_no_eval: bool) -> str | None:
    """Checked before any training, instead of failing after the last epoch: None when the
    query set can be scored; the reason it cannot when `allow_no_eval` (train without
    evaluation); an error otherwise."""
    from reidcli.data.check import evaluation_problem
    from reidcli.errors import DatasetError

    ds = evaluated.dataset
    if not (ds.splits.get("query") and ds.splits.get("gallery")):
        raise DatasetError(f"--eval-data {evaluated.label}: {ds.name} at {ds.root} has no "
                           "query/gallery split to evaluate on")
    problem = evaluation_problem(ds)
    if problem is None:
        return None
    if not allow_no_eval:
        raise DatasetError(
            f"{problem.message}. Fix the query/gallery split (see `reid datasets check`) or "
            "train without evaluation with --allow-no-eval"
        )
    return problem.message
