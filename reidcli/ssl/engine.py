"""The teacher-student loop shared by dino, dino-mim and pass: `pretrain(cfg)`.

Per iteration, as in DINO's train_one_epoch: set lr / wd from the precomputed schedules;
teacher (no grad) on the global views, student on all views, one backbone pass per crop
size; loss in float32; abort on a non-finite loss; backward through a GradScaler (active
for fp16 only); per-parameter gradient clipping; the heads' last layers get no update
during the first `freeze_last_layer` epochs; optimiser step; EMA of the student into the
teacher with the scheduled momentum.

Determinism: sample i of epoch e is augmented (and masked) from a generator seeded by
(seed, e, i); the shuffled order depends on (seed, e); the training process's own random
stream (drop_path) is re-seeded from (seed, iteration, rank) at every step. Hence
trainer.pt needs only the weights, optimiser, scaler, centres and the iteration number, and
`--resume` continues bit for bit, even from the middle of an epoch; a mid-epoch trainer.pt
also keeps the epoch's running metric sums, so the resumed epoch's record is the same too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from reidcli.data import load_dataset
from reidcli.data.loading import parse_options
from reidcli.errors import ReidError, TrainingError
from reidcli.models import build_model, load_pretrained
from reidcli.runtime import distributed as du
from reidcli.runtime.device import amp_dtype, autocast, device_type, resolve_device
from reidcli.runtime.rundir import RunDir, run_output
from reidcli.runtime.tensorboard import metrics_sink, require_tensorboard
from reidcli.runtime.training import (
    EpochMeter,
    NonFiniteGuard,
    backward_step,
    make_scaler,
    peak_memory_mb,
    wrap_ddp,
)
from reidcli.ssl.augment import CropSpec, MultiCrop, PartCrop
from reidcli.ssl.checkpoint import (
    TrainingState,
    export_teacher,
    load_trainer,
    model_config,
    save_trainer,
)
from reidcli.ssl.config import (
    PretrainConfig,
    config_differences,
    config_to_toml,
    load_run_config,
)
from reidcli.ssl.data import (
    EpochBatchSampler,
    PathTable,
    PretrainDataset,
    collate_views,
    step_seed,
)
from reidcli.ssl.ema import ema_update
from reidcli.ssl.masking import MaskSpec
from reidcli.ssl.monitor import CollapseMonitor, PretrainProgress
from reidcli.ssl.network import SSLNetwork, token_grid
from reidcli.ssl.objective import Objective
from reidcli.ssl.schedules import Schedules, schedules_for
from reidcli.utils.faults import crash_point
from reidcli.utils.outputs import claim_output, spec_path

log = logging.getLogger(__name__)

@dataclass
class PretrainResult:
    run_dir: Path
    iterations: int
    start_iteration: int
    metrics: list[dict[str, Any]] = field(default_factory=list)


def load_paths(cfg: PretrainConfig) -> PathTable:
    options: dict[str, Any] = dict(parse_options(cfg.data_options))
    if cfg.subset is not None:
        options["subset"] = cfg.subset
    if cfg.keep is not None:
        options["keep"] = cfg.keep
    dataset = load_dataset(cfg.data, cfg.data_root, **options)
    return PathTable([r.path for r in dataset.training_images()])


def build_transform(cfg: PretrainConfig) -> MultiCrop:
    assert cfg.local_scale is not None
    spec = CropSpec(
        global_size=tuple(cfg.global_size),
        local_size=tuple(cfg.local_size),
        local_crops=cfg.part_crops if cfg.method == "pass" else cfg.local_crops,
        global_scale=tuple(cfg.global_scale),
        local_scale=tuple(cfg.local_scale),
        aspect=tuple(cfg.crop_aspect),
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        colour_jitter=tuple(cfg.colour_jitter),
        colour_jitter_prob=cfg.colour_jitter_prob,
        grayscale_prob=cfg.grayscale_prob,
        solarize_prob=cfg.solarize_prob,
        blur_sigma=tuple(cfg.blur_sigma),
    )
    if cfg.method == "pass":
        return PartCrop(spec, cfg.parts, cfg.region_fraction)
    return MultiCrop(spec)


def build_networks(cfg: PretrainConfig) -> tuple[SSLNetwork, SSLNetwork]:
    """Student (drop_path, --init weights) and an identical teacher without drop_path."""
    assert cfg.out_dim is not None
    model_cfg = model_config(cfg)
    student_model = build_model(model_cfg)
    if cfg.init:
        load_pretrained(student_model, cfg.init, allow_partial=cfg.allow_partial)
    teacher_model = build_model(model_config(cfg, drop_path=0.0))
    kwargs: dict[str, Any] = dict(
        out_dim=cfg.out_dim,
        mim=cfg.method == "dino-mim",
        parts=cfg.parts if cfg.method == "pass" else 0,
        part_crops=cfg.part_crops,
        head_hidden=cfg.head_hidden,
        head_bottleneck=cfg.head_bottleneck,
        norm_last_layer=cfg.norm_last_layer,
    )
    student = SSLNetwork(student_model.backbone, **kwargs)
    teacher = SSLNetwork(teacher_model.backbone, **kwargs)
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    return student, teacher


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Weight decay on weights only: biases and 1-D parameters (norms) are not decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def clip_per_parameter(model: nn.Module, clip: float) -> None:
    """Scale each parameter's gradient to norm <= clip (DINO clips per tensor, not globally)."""
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.norm(2)
            p.grad.mul_(torch.clamp(clip / (norm + 1e-6), max=1.0))


class _Pretrainer:
    def __init__(self, cfg: PretrainConfig, ctx: du.DistContext, device: torch.device) -> None:
        self.cfg, self.ctx, self.device = cfg, ctx, device
        self.run = RunDir(cfg.output)
        self.amp = amp_dtype(cfg.amp, device)
        # The builders' order keeps the random streams (the weights' initialisation) of
        # every earlier version.
        torch.manual_seed(cfg.seed)
        self._build_data()
        student, teacher = self._build_model()
        self._build_loader(student)
        self._build_optimizer(student, teacher)
        self.monitor = CollapseMonitor()
        self.metrics: list[dict[str, Any]] = []
        # The running sums of the epoch a resume lands in the middle of (from trainer.pt).
        self._carry: dict[str, Any] | None = None

    # -- builders --------------------------------------------------------------------------
    def _build_data(self) -> None:
        """The image paths and each rank's share of every epoch's shuffled batches."""
        cfg, ctx = self.cfg, self.ctx
        self.paths = load_paths(cfg)
        self.sampler = EpochBatchSampler(
            len(self.paths), cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size
        )
        self.iters_per_epoch = self.sampler.batches_per_epoch

    def _build_model(self) -> tuple[SSLNetwork, SSLNetwork]:
        """Student and teacher on the device; `student` is what the loop calls (DDP)."""
        student, teacher = build_networks(self.cfg)
        # As DINO: BatchNorms (ICS stem) see the global batch under DDP, teacher's too
        # (converted together: one warning on CPU processes, not two).
        pair = du.sync_batchnorm(nn.ModuleList([student, teacher]), self.ctx, self.device)
        pair = pair.to(self.device)
        self.student_net = pair[0]
        self.student = wrap_ddp(self.student_net, self.ctx, self.device)
        return pair[0], pair[1]

    def _build_loader(self, student: SSLNetwork) -> None:
        """Multi-crop views (and dino-mim's masks) of the sampler's batches."""
        cfg = self.cfg
        masking = None
        if cfg.method == "dino-mim":
            grid = token_grid(student.backbone, tuple(cfg.global_size))
            spec = MaskSpec(ratio_range=tuple(cfg.mask_ratio), unmasked_prob=1 - cfg.mask_prob)
            masking = (grid, spec)
        self.dataset = PretrainDataset(self.paths, build_transform(cfg), cfg.seed, masking)
        self.loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=cfg.workers,
            collate_fn=collate_views,
            pin_memory=self.device.type == "cuda",
        )

    def _build_optimizer(self, student: SSLNetwork, teacher: SSLNetwork) -> None:
        """Objective (its centres), AdamW, the gradient scaler and every per-iteration
        schedule; `state` holds what trainer.pt saves."""
        cfg = self.cfg
        assert cfg.out_dim is not None
        objective = Objective(
            cfg.method, cfg.out_dim, parts=cfg.parts, student_temp=cfg.student_temp,
            center_momentum=cfg.center_momentum, lambda_cls=cfg.lambda_cls,
            lambda_mim=cfg.lambda_mim,
        ).to(self.device)
        optimizer = torch.optim.AdamW(param_groups(student))
        scaler = make_scaler(self.amp, self.device)
        self.state = TrainingState(student, teacher, objective, optimizer, scaler)
        self.schedules: Schedules = schedules_for(cfg, self.iters_per_epoch)
        self.guard = NonFiniteGuard(self.run.root, hint="a longer warm-up")

    # -- set-up ----------------------------------------------------------------------------
    def start(self) -> int:
        """Prepare the run directory; the iteration to start from."""
        if self.ctx.is_main:  # trainer.pt: student, teacher, two Adam moments; the export
            self.run.check_space(sum(p.numel() for p in self.student_net.parameters()), 5)
        resuming = self.cfg.resume and self.run.has_checkpoint()
        if self.cfg.resume and not resuming:
            log.warning("%s: nothing of this run was committed (it stopped before its first "
                        "checkpoint, so there is no %s); starting it from the beginning",
                        self.run.root, self.run.trainer_path.name)
        if not resuming:
            if self.ctx.is_main:
                self.run.prepare_new()
                self.run.write_config(config_to_toml(self.cfg, header="reid pretrain"))
            du.barrier(self.ctx)
            return 0
        it, self._carry = load_trainer(self.run, self.state, self.device)
        self.metrics = self.run.read_metrics()
        epoch = it // self.iters_per_epoch
        if self.ctx.is_main:
            # Epoch records after the resume point belong to work about to be redone.
            self.metrics = [m for m in self.metrics if int(m["epoch"]) < epoch]
            self.run.write_metrics(self.metrics)
            self.run.append_log([f"resumed at iteration {it} (epoch {epoch})"])
        log.info("resuming %s at iteration %d (epoch %d)", self.run.root, it, epoch)
        return it

    # -- one step --------------------------------------------------------------------------
    def _autocast(self) -> Any:
        return autocast(self.device, self.amp)

    def step(
        self, it: int, epoch: int, views: list[torch.Tensor], masks: list[torch.Tensor]
    ) -> dict[str, float]:
        cfg, s, st = self.cfg, self.schedules, self.state
        torch.manual_seed(step_seed(cfg.seed, it, self.ctx.rank))
        for i, group in enumerate(st.optimizer.param_groups):
            group["lr"] = float(s.lr[it])
            if i == 0:
                group["weight_decay"] = float(s.wd[it])
        views = [v.to(self.device, non_blocking=True) for v in views]
        masks = [m.to(self.device, non_blocking=True) for m in masks]
        t_temp, p_temp = float(s.teacher_temp[epoch]), float(s.patch_temp[epoch])

        with self._autocast():
            with torch.no_grad():
                t_out = st.teacher(views[:2])
            s_out = self.student(views, masks)
        loss, terms, t_probs = st.objective(s_out, t_out, masks, t_temp, p_temp)
        value = float(loss.detach())
        if not math.isfinite(value):
            self.guard.check(value, f"epoch {epoch}, iteration {it}",
                             "the last checkpoint" if self.run.has_checkpoint() else None,
                             {k: float(v) for k, v in terms.items()})
        backward_step(loss, st.optimizer, st.scaler, self._adjust_gradients(epoch))
        ema_update(st.teacher, self.student_net, float(s.momentum[it]))
        self.monitor.update(t_probs)
        return {"loss": value} | {k: float(v) for k, v in terms.items()}

    def _adjust_gradients(self, epoch: int) -> Callable[[], None]:
        """DINO's gradient surgery on the unscaled gradients: per-parameter clipping, and no
        update of the heads' last layers during the first `freeze_last_layer` epochs."""
        cfg = self.cfg

        def adjust() -> None:
            if cfg.clip_grad > 0:
                clip_per_parameter(self.student_net, cfg.clip_grad)
            if epoch < cfg.freeze_last_layer:
                for p in self.student_net.last_layer_parameters():
                    p.grad = None

        return adjust

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> PretrainResult:
        cfg = self.cfg
        start_it = self.start()
        self.sink = metrics_sink(cfg.tensorboard and self.ctx.is_main, self.run, self.metrics,
                                 "iteration")
        total = self.schedules.total_iters
        stop = min(total, cfg.max_iters) if cfg.max_iters else total
        it = start_it
        start_epoch = start_it // self.iters_per_epoch
        progress = PretrainProgress(cfg.epochs, start_epoch, cfg.progress and self.ctx.is_main)
        self.student.train()
        self.state.teacher.train()
        with progress:
            for epoch in range(start_epoch, cfg.epochs):
                if it >= stop:
                    break
                skip = it - epoch * self.iters_per_epoch
                it = self._epoch(epoch, it, skip, stop, progress)
        self.sink.close()
        if self.ctx.is_main:
            export_teacher(self.run.root, self.state.teacher, cfg)
        du.barrier(self.ctx)
        return PretrainResult(self.run.root, it, start_it, self.metrics)

    def _stats(self, meter: EpochMeter, elapsed: float | None = None) -> dict[str, Any]:
        """An unfinished epoch's running sums, as trainer.pt keeps them."""
        return meter.state(elapsed) | {"monitor": self.monitor.state_dict()}

    def _epoch(
        self, epoch: int, it: int, skip: int, stop: int, progress: PretrainProgress
    ) -> int:
        cfg, s = self.cfg, self.schedules
        self.sampler.set_epoch(epoch, skip)
        self.dataset.set_epoch(epoch)
        self.monitor.reset()
        progress.start_epoch(epoch, self.iters_per_epoch, skip)
        carry, self._carry = self._carry, None
        exact = skip == 0 or (carry is not None and carry["steps"] == skip)
        meter = EpochMeter(self.ctx.world_size, carry=carry if skip and exact else None)
        if skip and exact:
            assert carry is not None
            self.monitor.load_state_dict(carry["monitor"], self.device)
        end = (epoch + 1) * self.iters_per_epoch
        for views, masks in meter.batches(self.loader):
            terms = self.step(it, epoch, views, masks)
            it += 1
            meter.add(terms, views[0].shape[0])
            # With a single loss term ("cls") the total says it all.
            shown = terms if len(terms) > 2 else {"loss": terms["loss"]}
            progress.step(
                shown, float(s.lr[it - 1]), float(s.momentum[it - 1]),
                float(s.teacher_temp[epoch]), meter.images_per_s(),
            )
            # The epoch's own end (or the stop) commits below, with the epoch record.
            if (cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < min(end, stop)
                    and self.ctx.is_main):
                save_trainer(self.run, self.state, it, epoch, self._stats(meter))
            crash_point("train.step", "pretrain")
            if it >= stop:
                break
        elapsed = meter.elapsed()
        finished = it == end
        if not self.ctx.is_main:
            return it
        record: dict[str, Any] = {
            "epoch": epoch,
            "iteration": it,
            "complete": finished,
            "lr": float(s.lr[it - 1]),
            "wd": float(s.wd[it - 1]),
            "momentum": float(s.momentum[it - 1]),
            "teacher_temp": float(s.teacher_temp[epoch]),
            "images_per_s": meter.images_per_s(elapsed),
            "epoch_time_s": elapsed,
            "loader_wait_s": meter.waited,
            "peak_memory_mb": peak_memory_mb(self.device),
        }
        if not exact:
            # A checkpoint of a version that did not keep the sums: the averages cover only
            # the iterations after the resume.
            record["averaged_from_iteration"] = it - meter.steps
        if cfg.method == "dino-mim":
            record["patch_temp"] = float(s.patch_temp[epoch])
        record |= {f"loss_{k}" if k != "loss" else k: meter.mean(k) for k in meter.sums}
        center = self.state.objective.cls_center
        record |= self.monitor.summary(center)
        problem = CollapseMonitor.collapsed(record)
        if problem:
            log.warning("epoch %d: %s (centre norm %.3g)", epoch, problem, record["centre_norm"])
        self.metrics.append(record)
        self.run.write_metrics(self.metrics)
        self.sink.write(record)
        self.run.append_log([_log_line(record)])
        if finished and cfg.export_every and (epoch + 1) % cfg.export_every == 0:
            export_teacher(self.run.root, self.state.teacher, cfg)
        save_trainer(self.run, self.state, it, epoch,
                     None if finished else self._stats(meter, elapsed))
        progress.end_epoch(f"loss {record['loss']:.3f}")
        return it


def _log_line(record: dict[str, Any]) -> str:
    keys = [k for k in record if k.startswith("loss") or k.startswith("teacher_")]
    body = "  ".join(f"{k} {record[k]:.4g}" for k in keys)
    return f"epoch {record['epoch']} it {record['iteration']}: {body}"


def _check_resume(cfg: PretrainConfig) -> None:
    """On --resume, check that the requested settings match the run's config.toml."""
    saved = load_run_config(cfg.output).resolved()
    diffs = config_differences(saved, cfg)
    if diffs:
        raise TrainingError(
            "cannot resume with different settings (only runtime options such as --workers "
            "may change): " + "; ".join(diffs)
        )


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Run (or resume) self-supervised pre-training as configured."""
    cfg = cfg.resolved()
    if cfg.tensorboard:
        require_tensorboard()
    if cfg.resume:
        _check_resume(cfg)
    ctx = du.init_distributed(device_type(cfg.device))
    out = run_output(cfg.output, "`reid pretrain` or `reid finetune`",
                     [spec_path(cfg.data), cfg.subset, cfg.init])
    try:
        device = resolve_device(cfg.device, ctx.local_rank)
        if cfg.batch_size % ctx.world_size:
            raise ReidError(
                f"batch size {cfg.batch_size} is not divisible by {ctx.world_size} processes"
            )
        with claim_output(out, lock=ctx.is_main):
            return _Pretrainer(cfg, ctx, device).fit()
    finally:
        du.shutdown(ctx)

