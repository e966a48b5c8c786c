"""The pieces fine-tuning and pre-training share (reidcli.runtime.training), and the
configuration machinery both stages' modules take from one place."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _training_data import ABORT
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from reidcli.errors import TrainingError
from reidcli.runtime import training as shared
from reidcli.runtime.device import amp_problems
from reidcli.runtime.distributed import DistContext
from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.schedules import build_schedules, schedules_for
from reidcli.training.config import FinetuneConfig

CPU = torch.device("cpu")


def test_guard_passes_finite_values_and_names_what_is_kept() -> None:
    guard = shared.NonFiniteGuard(Path("/runs/a"))
    guard.check(1.5, "epoch 1, step 1", None)  # nothing to say
    with pytest.raises(TrainingError) as err:
        guard.check(float("nan"), "epoch 2, step 3", "the checkpoint of epoch 1",
                    {"id": 0.5, "triplet": float("inf")})
    assert str(err.value) == (
        "non-finite loss (nan; id 0.5, triplet inf) at epoch 2, step 3; the checkpoint of "
        "epoch 1 in /runs/a is intact (--resume continues from it). Try a lower --lr, "
        "--amp bf16 or --amp off, or check the input images."
    )
    assert ABORT.fullmatch(str(err.value))


def test_guard_message_is_the_same_for_both_stages() -> None:
    finetune = shared.NonFiniteGuard(Path("/runs/f"))
    pretrain = shared.NonFiniteGuard(Path("/runs/p"), hint="a longer warm-up")
    messages = []
    for guard, where in ((finetune, "epoch 1, step 4"), (pretrain, "epoch 0, iteration 7")):
        with pytest.raises(TrainingError) as err:
            guard.check(float("inf"), where, None)
        messages.append(str(err.value))
        assert ABORT.fullmatch(str(err.value)), str(err.value)
    assert messages[0] == (
        "non-finite loss (inf) at epoch 1, step 4; nothing of this run was saved yet. "
        "Try a lower --lr, --amp bf16 or --amp off, or check the input images."
    )
    assert "Try a lower --lr, a longer warm-up, --amp bf16" in messages[1]


def test_scaler_scales_fp16_only() -> None:
    assert shared.make_scaler(torch.float16, CPU).is_enabled()
    for amp in (torch.bfloat16, None):
        scaler = shared.make_scaler(amp, CPU)
        assert not scaler.is_enabled()
        assert scaler.state_dict() == {}  # what trainer.pt holds for these


def test_wrap_ddp_is_the_module_itself_on_one_process() -> None:
    model = nn.Linear(2, 2)
    assert shared.wrap_ddp(model, DistContext(), CPU) is model


def test_wrap_ddp_wraps_under_a_process_group(tmp_path: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0,
                            world_size=1)
    try:
        model = nn.Linear(2, 2)
        wrapped = shared.wrap_ddp(model, DistContext(rank=0, world_size=2), CPU)
        assert isinstance(wrapped, DistributedDataParallel)
        assert wrapped.module is model and wrapped.device_ids is None  # CPU: no device ids
    finally:
        dist.destroy_process_group()


def _toy() -> tuple[nn.Linear, torch.optim.SGD]:
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def test_backward_step_is_a_plain_sgd_step() -> None:
    model, opt = _toy()
    before = model.weight.detach().clone()
    x = torch.tensor([[1.0, 2.0, 3.0]])
    model.weight.grad = torch.full_like(model.weight, 100.0)  # stale: must not count
    shared.backward_step(model(x).sum(), opt, shared.make_scaler(None, CPU))
    # d(w.x)/dw = x: w <- w - 0.1 x
    assert torch.allclose(model.weight, before - 0.1 * x)


def test_backward_step_adjusts_unscaled_gradients_before_the_step() -> None:
    model, opt = _toy()
    before = model.weight.detach().clone()
    x = torch.tensor([[1.0, 2.0, 3.0]])
    seen = []

    def adjust() -> None:
        assert model.weight.grad is not None
        seen.append(model.weight.grad.clone())
        model.weight.grad.mul_(0.5)

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # as fp16 would: scaled loss
    shared.backward_step(model(x).sum(), opt, scaler, adjust)
    assert torch.allclose(seen[0], x)  # unscaled: x, not 1024 x
    assert torch.allclose(model.weight, before - 0.1 * 0.5 * x)


def test_epoch_meter_sums_means_and_images() -> None:
    meter = shared.EpochMeter(world_size=2, keys=("loss", "acc"))
    meter.add({"loss": 1.0, "acc": 0.5}, batch_size=8)
    meter.add({"loss": 2.0, "acc": 0.25}, batch_size=8)
    assert (meter.mean("loss"), meter.mean("acc")) == (1.5, 0.375)
    assert meter.steps == 2 and meter.images == 32  # the global batch: 8 x 2 processes
    assert meter.images_per_s(elapsed=4.0) == 8.0


def test_epoch_meter_continues_from_its_state() -> None:
    first = shared.EpochMeter(world_size=1)
    first.add({"loss": 3.0, "cls": 1.0}, batch_size=4)
    state = first.state(elapsed=10.0)
    assert state == {"sums": {"loss": 3.0, "cls": 1.0}, "steps": 1, "images": 4,
                     "seconds": 10.0}
    resumed = shared.EpochMeter(world_size=1, carry=state)
    resumed.add({"loss": 1.0, "cls": 3.0}, batch_size=4)
    assert (resumed.mean("loss"), resumed.mean("cls"), resumed.images) == (2.0, 2.0, 8)
    assert resumed.elapsed() >= 10.0  # the interrupted part's time counts


def test_epoch_meter_times_the_wait_for_batches() -> None:
    def slow():
        for i in range(3):
            time.sleep(0.02)
            yield i

    meter = shared.EpochMeter(world_size=1)
    got = []
    for batch in meter.batches(slow()):
        got.append(batch)
    assert got == [0, 1, 2]
    assert meter.waited >= 0.06


def test_peak_memory_is_positive_on_cpu() -> None:
    assert shared.peak_memory_mb(CPU) > 0


def test_amp_setting_is_declared_once() -> None:
    for cls in (FinetuneConfig, PretrainConfig):
        field = cls.__dataclass_fields__["amp"]
        assert field.default == "auto" and field.metadata["section"] == "train"
    assert amp_problems("fp16") == []
    assert amp_problems("fp8") == ["amp must be one of auto, bf16, fp16, off, got 'fp8'"]


def test_schedules_by_field_name_equal_the_explicit_call() -> None:
    cfg = PretrainConfig(data="x", output="o", batch_size=64, epochs=3, warmup_epochs=1,
                         warmup_teacher_temp_epochs=2).resolved()
    explicit = build_schedules(
        lr=cfg.lr * 64 / 256, min_lr=cfg.min_lr, warmup_epochs=1,
        weight_decay=cfg.weight_decay, weight_decay_end=cfg.weight_decay_end,
        momentum_teacher=cfg.momentum_teacher, epochs=3, iters_per_epoch=5,
        warmup_teacher_temp=cfg.warmup_teacher_temp, teacher_temp=cfg.teacher_temp,
        warmup_teacher_temp_epochs=2, warmup_patch_temp=cfg.warmup_patch_temp,
        patch_temp=cfg.patch_temp, warmup_patch_temp_epochs=cfg.warmup_patch_temp_epochs,
    )
    got = schedules_for(cfg, iters_per_epoch=5)
    for name in ("lr", "wd", "momentum", "teacher_temp", "patch_temp"):
        assert (getattr(got, name) == getattr(explicit, name)).all(), name


def test_run_configs_are_read_back_through_one_schema(tmp_path: Path) -> None:
    from reidcli.ssl import config as ssl_config
    from reidcli.training import config as ft_config

    (tmp_path / "ft").mkdir()
    (tmp_path / "ft" / "config.toml").write_text(
        ft_config.config_to_toml(FinetuneConfig(data="market:rel/data", lr=0.5)))
    saved = ft_config.load_run_config(tmp_path / "ft")
    # Fine-tuning's `loaded` step: relative dataset paths become absolute.
    assert saved.lr == 0.5 and saved.resume and Path(saved.data[0].split(":", 1)[1]).is_absolute()
    again = ft_config.resume_config(tmp_path / "ft", {"workers": 1})
    assert again.workers == 1 and again.output == str(tmp_path / "ft")

    (tmp_path / "pt").mkdir()
    (tmp_path / "pt" / "config.toml").write_text(
        ssl_config.config_to_toml(PretrainConfig(data="luperson:/d", epochs=7)))
    assert ssl_config.resume_config(tmp_path / "pt", {"workers": 2}).epochs == 7


def test_run_dir_spells_each_layout_path_once(tmp_path: Path) -> None:
    from reidcli.runtime.rundir import RunDir

    run = RunDir(tmp_path / "r")
    got = [run.config_path, run.trainer_path, run.metrics_path, run.log_path, run.best_dir,
           run.tensorboard_dir]
    names = ["config.toml", "trainer.pt", "metrics.jsonl", "train.log", "best", "tb"]
    assert got == [tmp_path / "r" / n for n in names]
    assert RunDir(tmp_path / "s").trainer_path == tmp_path / "s" / "trainer.pt"  # per run
