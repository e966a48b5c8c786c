"""Parameter groups and the TransReID learning-rate schedule at known epochs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reidcli.training.optim import build_optimizer, param_groups
from reidcli.training.schedule import build_scheduler, lr_at_epoch


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.neck = nn.BatchNorm1d(3)
        self.neck.bias.requires_grad_(False)  # BNNeck: frozen bias


def test_param_groups_split_bias_and_skip_frozen() -> None:
    model = _Toy()
    groups = param_groups(model, lr=0.008, weight_decay=1e-4, bias_lr_factor=2.0)
    by_name = {g["name"]: g for g in groups}
    weights = {id(p) for p in by_name["weights"]["params"]}
    biases = {id(p) for p in by_name["biases"]["params"]}
    assert weights == {id(model.fc.weight), id(model.norm.weight), id(model.neck.weight)}
    assert biases == {id(model.fc.bias), id(model.norm.bias)}
    assert by_name["weights"]["lr"] == 0.008 and by_name["biases"]["lr"] == 0.016
    assert by_name["weights"]["weight_decay"] == 1e-4
    assert by_name["biases"]["weight_decay"] == 1e-4  # WEIGHT_DECAY_BIAS = 1e-4 in the configs


def test_param_groups_custom_bias_decay() -> None:
    groups = param_groups(_Toy(), lr=1.0, weight_decay=0.1, weight_decay_bias=0.0)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]


def test_build_optimizer_kinds() -> None:
    sgd = build_optimizer(_Toy(), "sgd", lr=0.008, weight_decay=1e-4)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9
    adamw = build_optimizer(_Toy(), "AdamW", lr=4e-4, weight_decay=1e-4)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[1]["lr"] == pytest.approx(8e-4)
    with pytest.raises(ValueError):
        build_optimizer(_Toy(), "lamb", lr=1.0, weight_decay=0.0)


def test_transreid_schedule_known_value_epoch_20() -> None:
    # The reference value: base 0.008, epoch 20 -> about 7.47e-3 (120 epochs,
    # 5 warm-up epochs, floor 0.002*lr, cosine over the whole 120 epochs).
    lr = lr_at_epoch(20, base_lr=0.008, epochs=120, warmup_epochs=5)
    assert lr == pytest.approx(7.4652e-3, abs=1e-7)
    assert f"{lr:.2e}" == "7.47e-03"


def _expected(epoch: int, peak: float, init: float, floor: float, epochs: int,
              warmup: int) -> float:
    if epoch < warmup:
        return init + epoch * (peak - init) / warmup
    if epoch >= epochs:
        return floor
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * epoch / epochs))


@pytest.mark.parametrize(("base", "epochs", "warmup"), [(0.008, 120, 5), (4e-4, 120, 20)])
def test_schedule_matches_formula_every_epoch(base: float, epochs: int, warmup: int) -> None:
    model = _Toy()
    opt = build_optimizer(model, "sgd", lr=base, weight_decay=1e-4)
    sched = build_scheduler(opt, base_lr=base, epochs=epochs, warmup_epochs=warmup)
    init, floor = 0.01 * base, 0.002 * base  # absolute: shared by the x2 bias group
    for epoch in range(1, epochs + 1):
        sched.step(epoch)
        weights, biases = (g["lr"] for g in opt.param_groups)
        assert weights == pytest.approx(_expected(epoch, base, init, floor, epochs, warmup))
        assert biases == pytest.approx(_expected(epoch, 2 * base, init, floor, epochs, warmup))
    # Known points: first warm-up epoch, end of warm-up, last epoch at the floor.
    assert lr_at_epoch(1, 0.008, 120, 5) == pytest.approx(0.00008 + 0.00792 / 5)
    assert lr_at_epoch(120, 0.008, 120, 5) == pytest.approx(1.6e-5)


def test_schedule_starts_at_warmup_init_before_first_step() -> None:
    opt = build_optimizer(_Toy(), "sgd", lr=0.008, weight_decay=1e-4)
    build_scheduler(opt, base_lr=0.008, epochs=120, warmup_epochs=5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.00008)


def test_schedule_bias_group_floor_is_absolute() -> None:
    opt = build_optimizer(_Toy(), "sgd", lr=0.008, weight_decay=1e-4)
    sched = build_scheduler(opt, base_lr=0.008, epochs=120, warmup_epochs=5)
    sched.step(20)
    bias_lr = opt.param_groups[1]["lr"]
    floor = 0.002 * 0.008
    assert bias_lr == pytest.approx(floor + 0.5 * (0.016 - floor) * (1 + math.cos(math.pi / 6)))
