"""The fine-tuning loop: `finetune(cfg) -> RunResult`.

One epoch, as in TransReID's processor: set the epoch's learning rate (`scheduler.step`),
draw the epoch's PK batches, and for each batch run the forward pass under autocast, the
losses in float32, then backward/step through a GradScaler (active for fp16 only). At the
end of an epoch rank 0 evaluates when due and writes the checkpoint; `trainer.pt` last.

Determinism: the PK plan depends on (seed, epoch); the loader's worker seeds come from a
generator re-seeded from (seed, epoch, rank); everything else (augmentation in the main
process, drop_path) draws from the global RNGs whose states are saved with every
checkpoint. So `--resume` continues bit for bit, and an interrupted epoch is re-run
exactly.
"""

from __future__ import annotations

import bisect
import logging
import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from reidcli.errors import ReidError, TrainingError
from reidcli.models import save_model
from reidcli.runtime import distributed as du
from reidcli.runtime.device import amp_dtype, autocast, device_type, resolve_device
from reidcli.runtime.rundir import RunDir, run_output
from reidcli.runtime.tensorboard import metrics_sink, require_tensorboard
from reidcli.runtime.training import (
    EpochMeter,
    NonFiniteGuard,
    backward_step,
    make_scaler,
    wrap_ddp,
)
from reidcli.training.config import (
    FinetuneConfig,
    config_differences,
    config_to_toml,
    load_run_config,
    runtime_fields,
)
from reidcli.training.evaluation import (
    EvalSet,
    eval_datasets,
    evaluation_blocker,
    extract,
    make_eval_loader,
    retrieval_metrics,
)
from reidcli.training.losses import ReidLoss, accuracy
from reidcli.training.normalisation import pretrained_normalisation
from reidcli.training.optim import build_optimizer
from reidcli.training.progress import TrainProgress, print_summary
from reidcli.training.results import BatchInfo, EpochInfo, Hooks, RunResult
from reidcli.training.rng import capture_rng, restore_rng, seed_everything
from reidcli.training.schedule import build_scheduler
from reidcli.utils.faults import crash_point
from reidcli.utils.outputs import claim_output, spec_path

log = logging.getLogger(__name__)

TRAINER_FORMAT = "reidcli-trainer"
TRAINER_VERSION = 1


class _Trainer:
    def __init__(self, cfg: FinetuneConfig, ctx: du.DistContext, hooks: Hooks | None) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.hooks = hooks or Hooks()
        self.device = resolve_device(cfg.device, ctx.local_rank)
        self.amp = amp_dtype(cfg.amp, self.device)
        self.run = RunDir(cfg.output)
        self.main = ctx.is_main

    # -- set-up ----------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        log.info(message)
        if self.main:
            self.run.append_log([message])

    def _check_resume_config(self) -> None:
        saved = load_run_config(self.run.root)
        # Switching precision (e.g. to get past a non-finite loss) is allowed; the rest of
        # the training configuration must stay what the saved state was produced with.
        diffs = config_differences(saved, self.cfg, ignore=runtime_fields() | {"amp"})
        if saved.amp != self.cfg.amp:
            log.warning("resuming with --amp %s instead of %s: the continuation is not "
                        "bit-identical to the original run", self.cfg.amp, saved.amp)
        if diffs:
            raise TrainingError(
                "cannot resume with a different training configuration ("
                + "; ".join(diffs)
                + "); only runtime options (workers, device, eval cadence, amp) may change"
            )

    def _build(self) -> None:
        """Everything a run trains with, in an order that keeps the random streams (and so
        the numbers) of every earlier version: data, model, optimiser, loss, loaders."""
        seed_everything(self.cfg.seed + self.ctx.rank)
        sources, loaded = self._build_data()
        self._build_eval_sets(sources, loaded)
        self._build_model()
        self._build_optimizer()
        self._build_loss()
        self._build_loaders()

    def _build_data(self) -> tuple[list[Any], list[Any]]:
        """The training dataset (several joined: `sources`); what `load_joint` read, for
        choosing the evaluated datasets."""
        from reidcli.data.joint import load_joint

        cfg = self.cfg
        self.dataset, sources, loaded = load_joint(cfg.data, cfg.data_root, cfg.data_options,
                                                    cfg.eval_data)
        self.sources = sources if len(sources) > 1 else []
        self.num_classes = self._num_classes()
        return sources, loaded

    def _build_eval_sets(self, sources: list[Any], loaded: list[Any]) -> None:
        """The datasets evaluated after an epoch; one that cannot be is skipped with
        --allow-no-eval (a warning in train.log), else refused."""
        cfg = self.cfg
        found = eval_datasets(cfg, sources, loaded)
        if not found and not cfg.eval_data:
            self._say(f"{self.dataset.name} has no query/gallery split: no evaluation")
        self.eval_sets = []
        for e in found:
            problem = evaluation_blocker(e, cfg.allow_no_eval)
            if problem is None:
                self.eval_sets.append(e)
                continue
            log.warning("%s: training without evaluation (--allow-no-eval)", problem)
            if self.main:
                self.run.append_log([f"warning: {problem}: training without evaluation"])

    def _build_model(self) -> None:
        """`model` (what is saved), on the device, and `ddp`: what the loop calls."""
        from reidcli.models import build_model, model_config_from

        cfg = self.cfg
        mean, std = pretrained_normalisation(cfg)
        try:
            self.model_cfg = model_config_from(
                cfg, num_cams=max(1, self.dataset.num_cams),
                num_views=max(1, self.dataset.num_views), num_classes=self.num_classes,
                mean=cfg.mean or mean, std=cfg.std or std,
                sources=tuple(src.to_dict() for src in self.sources),
            )
        except ValueError as err:
            raise ReidError(f"invalid model options: {err}") from None
        model = build_model(self.model_cfg)
        if cfg.pretrained and not self.resuming:
            self._load_pretrained(model)
        if cfg.freeze_backbone:
            model.freeze_backbone()
            if not cfg.pretrained:
                log.warning("--freeze-backbone without --pretrained trains on random features")
        if self.main:  # weights + optimiser state in trainer.pt + the best weights
            self.run.check_space(sum(p.numel() for p in model.parameters()), copies=4)
        if cfg.sync_bn:
            model = du.sync_batchnorm(model, self.ctx, self.device)
        self.model = model.to(self.device)
        self.ddp = wrap_ddp(self._train_module(), self.ctx, self.device)

    def _build_optimizer(self) -> None:
        """Optimiser, learning-rate schedule and the (fp16-only) gradient scaler."""
        cfg = self.cfg
        self.optimizer = build_optimizer(
            self.model, cfg.optimizer, lr=cfg.lr, weight_decay=cfg.wd, momentum=cfg.momentum,
            bias_lr_factor=cfg.bias_lr_factor, weight_decay_bias=cfg.wd_bias,
            lr_decay=cfg.lr_decay,
        )
        self.scheduler = build_scheduler(
            self.optimizer, cfg.lr, cfg.epochs, cfg.warmup_epochs,
            cfg.warmup_factor, cfg.min_lr_factor,
            kind=cfg.lr_schedule, steps=cfg.lr_steps, gamma=cfg.lr_gamma,
        )
        self.scaler = make_scaler(self.amp, self.device)
        self.guard = NonFiniteGuard(self.run.root)

    def _build_loss(self) -> None:
        cfg = self.cfg
        self.criterion = ReidLoss(
            label_smoothing=cfg.label_smoothing, margin=cfg.triplet_margin,
            id_weight=cfg.id_loss_weight, triplet_weight=cfg.triplet_loss_weight,
        )

    def _build_loaders(self) -> None:
        """Train transform, PK sampler and loader (supervised runs: a variant builds its
        own every epoch), and the query/gallery loaders of every evaluated dataset."""
        from reidcli.data.transforms import build_test_transform, build_train_transform

        cfg = self.cfg
        mean, std = self.model_cfg.mean, self.model_cfg.std
        self.train_tf = build_train_transform(
            cfg.size, mean, std, flip_p=cfg.flip_prob, padding=cfg.padding,
            erasing_p=cfg.erase_prob,
        )
        self.loader_gen = torch.Generator()
        if self.supervised:
            self.sampler = self._pk_sampler()
            self.train_loader = self._train_loader(self.dataset.train, self.sampler)
        pin = self.device.type == "cuda"
        test_tf = build_test_transform(cfg.size, mean, std)
        self.eval_loaders = [
            EvalSet(e.label, e.cam_offset,
                    *(make_eval_loader(e.dataset.splits[split], test_tf, cfg.eval_batch_size,
                                       cfg.workers, pin) for split in ("query", "gallery")))
            for e in self.eval_sets
        ]

    def _pk_sampler(self) -> Any:
        from reidcli.data.sampler import PKSampler

        cfg, ctx, train = self.cfg, self.ctx, self.dataset.train
        try:
            return PKSampler(
                [r.pid for r in train], p=cfg.ids_per_batch, k=cfg.images_per_id,
                seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
                domains=self._domains(train), balance=cfg.data_balance,
            )
        except ValueError as err:
            raise ReidError(f"cannot sample P x K batches: {err}") from None

    def _train_loader(self, records: list[Any], sampler: Any) -> DataLoader:
        """The training loader over `records` in `sampler`'s batches; its worker seeds come
        from `loader_gen`, re-seeded every epoch."""
        from reidcli.data.torch_dataset import ReidImageDataset

        return DataLoader(
            ReidImageDataset(records, self.train_tf),
            batch_sampler=sampler,
            num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
            generator=self.loader_gen,
        )

    # -- what a training variant (reidcli.unsupervised) replaces -----------------------------
    supervised = True
    """False: no label-based sampler here; the variant builds `sampler` and `train_loader`
    at the start of every epoch (`_train_epoch`)."""

    def _num_classes(self) -> int:
        n = self.dataset.num_train_pids
        if n < self.cfg.ids_per_batch:
            raise ReidError(
                f"{self.dataset.name} has {n} training identities, fewer than "
                f"--ids-per-batch {self.cfg.ids_per_batch}"
            )
        return n

    def _train_module(self) -> nn.Module:
        """The module the loop calls (and DDP wraps)."""
        return self.model

    def _batch_loss(self, out: Any, pids: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """(LossParts, accuracy) of one batch."""
        parts = self.criterion(out.logits, out.feats, pids)
        acc = accuracy(out.logits[0].detach(), pids) if out.logits else torch.zeros(())
        return parts, acc

    def _after_step(self) -> None:
        """Called after every optimiser step."""

    def _epoch_note(self, record: dict[str, Any]) -> str:
        """Extra text for the end-of-epoch line."""
        return ""

    def _domains(self, train: list[Any]) -> list[int] | None:
        """The training dataset of every train record (joint training), else None."""
        if not self.sources:
            return None
        ends = [s.pid_offset + s.num_pids for s in self.sources]
        return [bisect.bisect_right(ends, r.pid) for r in train]

    def _load_pretrained(self, model: nn.Module) -> None:
        from reidcli.models import load_pretrained

        report = load_pretrained(model, self.cfg.pretrained, allow_partial=self.cfg.allow_partial)
        self._say(f"pretrained weights from {self.cfg.pretrained}: {report}")

    # -- checkpoint state ------------------------------------------------------------------
    def _trainer_state(self, epoch: int, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "format": TRAINER_FORMAT,
            "version": TRAINER_VERSION,
            "epoch": epoch,
            "world_size": self.ctx.world_size,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": {"seed": self.sampler.seed, "epoch": epoch},
            "rng": rng_states,
            "best": {"epoch": self.best_epoch, "mAP": self.best_map},
        }

    def _restore(self) -> int:
        state = self.run.load_trainer()
        if state.get("format") != TRAINER_FORMAT:
            raise TrainingError(f"{self.run.trainer_path} is not a reidcli trainer state")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise TrainingError(f"the saved weights do not fit the model: {err}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        best = state.get("best") or {}
        self.best_epoch, self.best_map = best.get("epoch"), best.get("mAP")
        rngs = state["rng"]
        if state["world_size"] == self.ctx.world_size and len(rngs) == self.ctx.world_size:
            restore_rng(rngs[self.ctx.rank])
        else:
            log.warning(
                "resuming with %d processes instead of %d: random streams are re-seeded, so "
                "the continuation is not bit-identical", self.ctx.world_size, state["world_size"]
            )
            seed_everything(self.cfg.seed + 7919 * int(state["epoch"]) + self.ctx.rank)
        return int(state["epoch"])

    def _save(self, epoch: int, record: dict[str, Any]) -> None:
        """Commit the epoch (weights, metrics so far, trainer.pt last) before it is evaluated,
        so that a failing evaluation never costs the training."""
        # Every rank takes part in the gather; only rank 0 writes.
        rng_states = du.gather_objects(capture_rng(), self.ctx)
        if self.main:
            save_model(self.run.root, self.model, self.model_cfg)
            self.metrics.append(record)
            self.run.write_metrics(self.metrics)
            self.run.save_trainer(self._trainer_state(epoch, rng_states))
        du.barrier(self.ctx)

    def _save_evaluation(self, epoch: int, record: dict[str, Any]) -> None:
        """Evaluate the committed epoch; add its scores to metrics.jsonl (the record is the
        last one there) and keep the weights in best/ when its mAP is the best so far."""
        try:
            scores = self._evaluate(epoch)
        except ReidError as err:
            raise TrainingError(
                f"evaluation after epoch {epoch} failed: {err}. The epoch is saved in "
                f"{self.run.root}; evaluate it with `reid extract` and `reid evaluate`"
            ) from None
        record.update(scores)
        if "mAP" not in scores or (self.best_map is not None and scores["mAP"] <= self.best_map):
            if self.main:
                self.run.write_metrics(self.metrics)
            return
        self.best_epoch, self.best_map = epoch, scores["mAP"]
        if self.main:
            save_model(self.run.best_dir, self.model, self.model_cfg)
            self.run.write_metrics(self.metrics)

    # -- loop ------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int, progress: TrainProgress) -> dict[str, float]:
        cfg = self.cfg
        self.scheduler.step(epoch)
        self.sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + self.ctx.rank)
        self.ddp.train()
        lr = float(self.optimizer.param_groups[0]["lr"])
        steps = len(self.sampler)
        progress.start_epoch(epoch, steps)
        meter = EpochMeter(self.ctx.world_size, ("loss", "id_loss", "triplet_loss", "acc"))
        batches = meter.batches(self.train_loader)
        for step, (imgs, pids, camids, viewids, idx) in enumerate(batches, start=1):
            imgs = imgs.to(self.device, non_blocking=True)
            pids = pids.to(self.device, non_blocking=True)
            camids = camids.to(self.device, non_blocking=True)
            viewids = viewids.to(self.device, non_blocking=True)
            with autocast(self.device, self.amp):
                out = self.ddp(imgs, camids, viewids)
            parts, acc = self._batch_loss(out, pids)
            stats = torch.stack(
                [parts.total.detach(), parts.id, parts.triplet, acc.to(parts.id.device)]
            ).float()
            stats = du.all_reduce_mean(stats, self.ctx)
            values = dict(zip(meter.sums, (float(v) for v in stats.cpu()), strict=True))
            self.guard.check(
                values["loss"], f"epoch {epoch}, step {step}",
                f"the checkpoint of epoch {epoch - 1}" if epoch > 1 else None,
                {"id": values["id_loss"], "triplet": values["triplet_loss"]},
            )
            backward_step(parts.total, self.optimizer, self.scaler)
            self._after_step()

            meter.add(values, imgs.shape[0])
            progress.update_step(meter.mean("loss"), meter.mean("acc"), lr, meter.images_per_s())
            if self.main and cfg.log_every and step % cfg.log_every == 0:
                self.run.append_log([
                    f"epoch {epoch} iter {step}/{steps} loss {meter.mean('loss'):.4f} "
                    f"acc {meter.mean('acc'):.3f} lr {lr:.3e}"
                ])
            if self.hooks.on_batch is not None:
                self.hooks.on_batch(
                    BatchInfo(epoch, step, idx.clone(), values["loss"], self.model, self.ctx.rank)
                )
            crash_point("train.step", "finetune")
        if meter.steps == 0:
            raise TrainingError(
                f"epoch {epoch} had no batch: the training split cannot fill one "
                f"{cfg.ids_per_batch} x {cfg.images_per_id} batch"
            )
        elapsed = meter.elapsed()
        return {
            **{key: meter.mean(key) for key in meter.sums},
            "lr": lr,
            "steps": meter.steps,
            "images_per_s": meter.images_per_s(elapsed),
            "epoch_time_s": elapsed,
            "loader_wait_s": meter.waited,
        }

    def _evaluate(self, epoch: int) -> dict[str, Any]:
        """The first evaluation dataset's scores at the top level (what selects best/ and
        what every reader of one score takes) and every dataset's under "eval"."""
        if not self.eval_loaders:
            return {}
        metrics: dict[str, Any] = {}
        if self.main:
            start = time.perf_counter()
            per_dataset = {}
            for e in self.eval_loaders:
                query = extract(self.model, e.query, self.device, self.amp, e.cam_offset)
                gallery = extract(self.model, e.gallery, self.device, self.amp, e.cam_offset)
                per_dataset[e.label] = retrieval_metrics(query, gallery, self.device)
            metrics = {**next(iter(per_dataset.values())), "eval": per_dataset,
                       "eval_time_s": time.perf_counter() - start}
        metrics = du.broadcast_object(metrics, self.ctx)
        return metrics

    def _due(self, epoch: int) -> bool:
        every = self.cfg.eval_every
        return epoch == self.cfg.epochs or (every > 0 and epoch % every == 0)

    def run_training(self) -> RunResult:
        cfg = self.cfg
        resuming = self.resuming = cfg.resume and self.run.has_checkpoint()
        if cfg.resume:
            self._check_resume_config()
            if not resuming:
                log.warning("%s: nothing of this run was committed (it stopped before its "
                            "first epoch ended, so there is no %s); starting it from the "
                            "beginning", self.run.root, self.run.trainer_path.name)
        if not resuming and self.main:
            self.run.prepare_new()
        du.barrier(self.ctx)
        self._build()
        self.best_epoch: int | None = None
        self.best_map: float | None = None
        self.start_epoch = 1
        if resuming:
            done = self._restore()
            self.start_epoch = done + 1
            self.metrics = self.run.keep_metrics_until(done) if self.main else []
            # metrics.jsonl has the scores of an evaluation that finished after trainer.pt
            # was written; trainer.pt's own record of the best is one evaluation behind.
            scored = [r for r in self.metrics if "mAP" in r]
            if scored:
                top = max(scored, key=lambda r: r["mAP"])
                self.best_epoch, self.best_map = int(top["epoch"]), float(top["mAP"])
            self._say(f"resumed {self.run.root} after epoch {done}")
        else:
            self.metrics = []
            if self.main:
                header = "reid finetune: resolved configuration (usable as --recipe)"
                if self.sources:
                    header += "\njoint training: ids and cameras of each dataset\n" + "\n".join(
                        s.describe() for s in self.sources)
                self.run.write_config(config_to_toml(cfg, header=header))
        self._say(
            f"fine-tuning {cfg.backbone} on {self.dataset.name}: {len(self.dataset.train)} "
            f"images, {self.model_cfg.num_classes or 'pseudo-labelled'} ids, "
            f"{cfg.ids_per_batch}x{cfg.images_per_id} "
            f"batches, epochs {self.start_epoch}..{cfg.epochs}, device {self.device}, "
            f"amp {self.amp or 'off'}, {self.ctx.world_size} process(es)"
        )
        self.sink = metrics_sink(cfg.tensorboard and self.main, self.run, self.metrics, "epoch")
        started = time.perf_counter()
        last: dict[str, Any] = self.metrics[-1] if self.metrics else {}
        with TrainProgress(cfg.epochs, self.start_epoch, cfg.progress and self.main) as progress:
            for epoch in range(self.start_epoch, cfg.epochs + 1):
                record: dict[str, Any] = {"epoch": epoch, **self._train_epoch(epoch, progress)}
                self._save(epoch, record)
                if self._due(epoch) and self.eval_loaders:
                    self._save_evaluation(epoch, record)
                if self.main:  # the record is complete now, scores included
                    self.sink.write(record)
                line = (
                    f"epoch {epoch}/{cfg.epochs} loss {record['loss']:.4f} acc {record['acc']:.3f} "
                    f"lr {record['lr']:.3e} {record['images_per_s']:.1f} img/s"
                )
                line += self._epoch_note(record)
                for label, scores in (record.get("eval") or {}).items():
                    named = f" {label}" if len(record["eval"]) > 1 else ""
                    line += f" |{named} mAP {scores['mAP']:.2%} R1 {scores['R1']:.2%}"
                self._say(line)
                progress.end_epoch(line.split(" ", 2)[2])
                last = record
                if self.hooks.on_epoch_end is not None:
                    self.hooks.on_epoch_end(EpochInfo(epoch, record, self.model, self.ctx.rank))
        self.sink.close()
        result = RunResult(
            run_dir=self.run.root,
            epochs=cfg.epochs,
            start_epoch=self.start_epoch,
            best_epoch=self.best_epoch,
            best_map=self.best_map,
            final={k: v for k, v in last.items() if k in ("mAP", "R1", "R5", "R10", "mINP")},
            metrics=list(self.metrics),
            evaluations=dict(last.get("eval") or {}),
        )
        if self.main:
            self._summarise(result, time.perf_counter() - started, last)
        return result

    def _summarise(self, result: RunResult, seconds: float, last: dict[str, Any]) -> None:
        summary: dict[str, Any] = {
            "run directory": str(result.run_dir),
            "epochs": f"{result.start_epoch}..{result.epochs}",
            "time": f"{seconds:.1f} s",
        }
        if last:
            summary["final loss"] = last["loss"]
            summary["final accuracy"] = f"{last['acc']:.1%}"
            summary["images/s"] = f"{last['images_per_s']:.1f}"
        for key in ("mAP", "R1", "R5", "R10", "mINP"):
            if key in result.final:
                summary[key] = result.final[key]
        if result.best_epoch is not None:
            summary["best"] = f"epoch {result.best_epoch}, mAP {result.best_map:.2%}"
        self.run.append_log([f"finished: {summary}"])
        if len(result.evaluations) > 1:
            self.run.append_log([f"evaluations: {result.evaluations}"])
        if self.cfg.progress:
            print_summary(summary, result.evaluations)


def finetune(cfg: FinetuneConfig, hooks: Hooks | None = None) -> RunResult:
    """Train (or, with `cfg.resume`, continue) a ReID model as `cfg` says.

    Under torchrun with several processes this joins the process group, trains with DDP
    and leaves the group when done; only rank 0 writes to the run directory.
    """
    cfg = cfg.with_absolute_paths().validate()
    if cfg.tensorboard:
        require_tensorboard()
    trainer: type[_Trainer] = _Trainer
    if cfg.unsupervised:
        from reidcli.training.cluster_contrast import ClusterContrastTrainer as trainer
    ctx = du.init_distributed(device_type(cfg.device))
    out = run_output(cfg.output, "`reid finetune` or `reid pretrain`",
                     [cfg.pretrained, spec_path(cfg.data)])
    try:
        with claim_output(out, lock=ctx.is_main):
            return trainer(cfg, ctx, hooks).run_training()
    finally:
        du.shutdown(ctx)
