"""`reid finetune --unsupervised`: cluster-contrast training inside the fine-tuning loop.

At the start of every epoch, as TransReID-SSL's `cluster_contrast_train_usl.py` does:
1. features of every training image with the current model in eval mode (the test
   transform and `reid extract`'s FeatureExtractor); under torchrun each rank extracts its
   contiguous shard and the shards are gathered in rank order;
2. rank 0 turns them into pseudo labels (`pseudo_labels`) and broadcasts them; images left
   as outliers sit this epoch out;
3. a fresh cluster memory from the cluster means and `iters` P x K batches over the clustered
   images; loss = the memory's cross-entropy, memory update after every optimiser step (with
   the features of the whole global batch, so every rank keeps the same memory).
Train labels are never read except, when the dataset happens to have them, to report the
pseudo labels' purity. None of the per-epoch state is saved: it is rebuilt from the saved
model alone, so resuming at an epoch boundary continues exactly. Everything else (run
directory, checkpoints, AMP, DDP, evaluation, the final model) is the supervised loop's.
"""

from __future__ import annotations

import functools
import logging
import resource
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from reidcli.data.records import ImageRecord
from reidcli.errors import ReidError
from reidcli.runtime import distributed as du
from reidcli.training.engine import _Trainer
from reidcli.training.evaluation import extract, make_eval_loader
from reidcli.training.losses import LossParts
from reidcli.unsupervised.memory import ClusterMemory
from reidcli.unsupervised.pseudo_labels import (
    ClusterParams,
    camera_centred,
    label_agreement,
    pseudo_labels,
)
from reidcli.unsupervised.sampling import FixedIterations

log = logging.getLogger(__name__)


class TrainFeature(nn.Module):
    """The model in training mode, returning the feature the memory sees: the global branch,
    after the BNNeck when the test feature is (`neck_feat = "after"`, as the reference's
    ViT, which normalises its BN output in training and test alike)."""

    def __init__(self, model: nn.Module, after_bn: bool) -> None:
        super().__init__()
        self.model = model
        self.after_bn = after_bn

    def forward(self, x: torch.Tensor, camids: torch.Tensor | None = None,
                viewids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(x, camids, viewids)
        feat = out.feats[0]
        # A frozen backbone's training feats are already post-BN (see ReidModel.forward).
        if self.after_bn and not self.model.backbone_frozen:
            feat = self.model.heads[0](feat)
        return feat


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class ClusterContrastTrainer(_Trainer):
    supervised = False

    def _num_classes(self) -> int:
        cfg = self.cfg
        n, need = len(self.dataset.train), cfg.ids_per_batch * cfg.min_samples
        if n < need:
            raise ReidError(
                f"{self.dataset.name}: the train split has {n} images, too few for "
                f"--ids-per-batch {cfg.ids_per_batch} clusters of --min-samples "
                f"{cfg.min_samples} (at least {need}); add images or lower --min-samples "
                "or the batch's P"
            )
        return 0  # no classifier: the cluster memory replaces it

    def _train_module(self) -> nn.Module:
        after = self.cfg.neck_feat == "after"
        if not after:
            # Unused by the loss: without this DDP would wait for their gradients.
            self.model.heads.requires_grad_(False)
        return TrainFeature(self.model, after)

    # -- per epoch -------------------------------------------------------------------------
    def _features(self) -> torch.Tensor:
        from reidcli.data.transforms import build_test_transform
        from reidcli.runtime.files import shard

        cfg, ctx = self.cfg, self.ctx
        train = self.dataset.train
        lo, hi = shard(len(train), ctx.rank, ctx.world_size)
        tf = build_test_transform(cfg.size, self.model_cfg.mean, self.model_cfg.std)
        loader = make_eval_loader(train[lo:hi], tf, cfg.eval_batch_size, cfg.workers,
                                  self.device.type == "cuda")
        feats = extract(self.model, loader, self.device, self.amp).feats
        return torch.cat(du.gather_objects(feats, ctx))

    def _cluster(self, features: torch.Tensor) -> dict[str, Any]:
        """Rank 0's clustering (labels and what is reported about them)."""
        cfg = self.cfg
        params = ClusterParams(cfg.eps, cfg.min_samples, cfg.k1, cfg.k2)
        if cfg.camera_norm:
            features = camera_centred(features, self._train_cameras)
        result = pseudo_labels(features, params, device=self.device)
        stats: dict[str, Any] = {
            "clusters": result.num_clusters,
            "outliers": result.num_outliers,
            "outlier_share": result.outlier_share,
            "cluster_time_s": result.seconds,
            "peak_rss_mb": _peak_rss_mb(),
        }
        truth = np.array([r.pid for r in self.dataset.train], dtype=np.int64)
        if (truth >= 0).any():  # for the report only; training never sees these
            stats.update(label_agreement(result.labels, truth))
        return {"labels": result.labels, "stats": stats}

    @functools.cached_property
    def _train_cameras(self) -> np.ndarray:
        """The train images' camera ids, read (and warned about) once per run."""
        cams = np.array([r.camid for r in self.dataset.train], dtype=np.int64)
        if len(np.unique(cams[cams >= 0])) < 2:
            log.warning("--camera-norm: %s's train split has fewer than two known cameras, so "
                        "nothing is aligned (give cameras with --cam-regex for image folders)",
                        self.dataset.name)
        return cams

    def _prepare_epoch(self, epoch: int) -> dict[str, Any]:
        cfg, ctx = self.cfg, self.ctx
        start = time.perf_counter()
        features = self._features()
        extract_s = time.perf_counter() - start
        found = self._cluster(features) if ctx.is_main else None
        found = du.broadcast_object(found, ctx)
        labels, stats = found["labels"], found["stats"]
        if stats["clusters"] < cfg.ids_per_batch:
            kept = (f"epoch {epoch - 1} is saved in {self.run.root} (a new run with "
                    f"--pretrained {self.run.root} starts from it)" if epoch > 1
                    else "nothing was saved")
            raise ReidError(
                f"epoch {epoch}: DBSCAN found {stats['clusters']} clusters in "
                f"{len(labels)} images ({stats['outlier_share']:.0%} outliers), fewer than "
                f"the {cfg.ids_per_batch} of a batch; raise --eps (now {cfg.eps}) or lower "
                f"--min-samples (now {cfg.min_samples}); {kept}"
            )
        normed = F.normalize(features.float(), dim=1)
        self.memory = ClusterMemory.from_features(
            normed, labels, temperature=cfg.temperature, momentum=cfg.memory_momentum,
            update=cfg.memory_update,
        ).to(self.device)
        self.sampler = FixedIterations(
            labels.tolist(), p=cfg.ids_per_batch, k=cfg.images_per_id, iters=cfg.iters,
            seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
        )
        records = [ImageRecord(r.path, int(y), r.camid, r.viewid)
                   for r, y in zip(self.dataset.train, labels, strict=True)]
        self.train_loader = self._train_loader(records, self.sampler)
        return {**stats, "extract_time_s": extract_s}

    def _train_epoch(self, epoch: int, progress: Any) -> dict[str, float]:
        stats = self._prepare_epoch(epoch)
        record = super()._train_epoch(epoch, progress)
        for key in ("id_loss", "triplet_loss"):  # one loss here: `loss`
            record.pop(key, None)
        return {**record, **stats}

    # -- per step --------------------------------------------------------------------------
    def _batch_loss(self, out: Any, pids: torch.Tensor) -> tuple[LossParts, torch.Tensor]:
        loss, logits = self.memory.loss(out, pids)
        self._step_batch = (out.detach().float(), pids)
        acc = (logits.detach().argmax(dim=1) == pids).float().mean()
        return LossParts(total=loss, id=loss.detach(), triplet=torch.zeros_like(loss)), acc

    def _after_step(self) -> None:
        feats, pids = self._step_batch
        if self.ctx.enabled:
            feats, pids = _all_gather(feats), _all_gather(pids)
        self.memory.update(feats, pids)

    def _epoch_note(self, record: dict[str, Any]) -> str:
        note = (f" | {record['clusters']} clusters, {record['outlier_share']:.0%} outliers, "
                f"clustering {record['cluster_time_s']:.1f} s, peak {record['peak_rss_mb']:.0f} MB")
        if "purity_ari" in record:
            note += f", purity ARI {record['purity_ari']:.3f} NMI {record['purity_nmi']:.3f}"
        return note


def _all_gather(t: torch.Tensor) -> torch.Tensor:
    """Every rank's equally sized `t`, concatenated in rank order (the global batch)."""
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
