"""finetune -> extract -> evaluate with DINOv2 (frozen and fine-tuned), SOLIDER Swin, ResNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _training_data import write_market
from safetensors.torch import load_file
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.errors import ReidError
from reidcli.inference.extract import ExtractOptions, extract_bank
from reidcli.models import ModelConfig, build_model, save_model
from reidcli.ssl.config import PretrainConfig
from reidcli.training import FinetuneConfig, finetune


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions and windows lose more to thread hand-offs than they gain (2 shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_market(tmp_path_factory.mktemp("data") / "market", train_ids=6, test_ids=3)


def tiny(market: Path, out: Path, backbone: str, **kw) -> FinetuneConfig:
    values = dict(
        data=f"market1501:{market}", output=str(out), backbone=backbone, size=(64, 32),
        epochs=1, warmup_epochs=0, lr=0.01, ids_per_batch=3, images_per_id=2, workers=0,
        device="cpu", seed=3, eval_batch_size=16, progress=False,
    )
    values.update(kw)
    return FinetuneConfig(**values)


@pytest.mark.parametrize("backbone", ["dinov2-tiny-test", "resnet-tiny-test"])
def test_frozen_backbone_stays_bit_identical(backbone: str, market: Path, tmp_path: Path) -> None:
    init = build_model(ModelConfig(backbone=backbone, img_size=(64, 32)))
    save_model(tmp_path / "init", init)
    out = tmp_path / "run"
    finetune(tiny(market, out, backbone, pretrained=str(tmp_path / "init"),
                  freeze_backbone=True, optimizer="adam", lr=3.5e-4, wd=5e-4,
                  triplet_loss_weight=0.0))
    before = init.state_dict()
    after = load_file(out / "model.safetensors")
    backbone_keys = [k for k in before if k.startswith("backbone.")]
    # Every backbone tensor, BatchNorm statistics included, is exactly what was loaded.
    assert all(torch.equal(after[k], before[k]) for k in backbone_keys)
    assert not torch.equal(after["heads.0.bn.weight"], before["heads.0.bn.weight"])


def test_frozen_backbone_rejects_sie(market: Path, tmp_path: Path) -> None:
    with pytest.raises(ReidError, match="freeze-backbone"):
        finetune(tiny(market, tmp_path / "r", "dinov2-tiny-test", freeze_backbone=True, sie=True))


@pytest.mark.parametrize(
    ("backbone", "options"),
    [
        ("dinov2-reg-tiny-test", {"lr_decay": 0.75, "optimizer": "adamw", "lr": 1e-3}),
        ("swin-tiny-test", {"semantic_weight": 0.3}),
        ("resnet-tiny-test", {"optimizer": "adam", "lr": 3.5e-4, "lr_schedule": "step",
                              "lr_steps": (1,), "label_smoothing": 0.1, "margin": 0.3,
                              "soft_margin": False, "neck_feat": "after", "drop_path": 0.0}),
    ],
)
def test_every_family_through_finetune_extract_evaluate(
    backbone: str, options: dict, market: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = finetune(tiny(market, run, backbone, **options))
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.metrics)
    assert "mAP" in result.final
    model_json = json.loads((run / "model.json").read_text())
    assert model_json["backbone"] == backbone
    if backbone.startswith("swin"):
        assert model_json["semantic_weight"] == 0.3
    # extract rebuilds the network from the run directory alone ...
    bank = tmp_path / "feats.h5"
    extract_bank(ExtractOptions(checkpoint=run, output=bank, data=f"market1501:{market}",
                                workers=0, device="cpu", progress=False, batch_size=16))
    # ... and evaluate scores the bank.
    res = CliRunner().invoke(app, ["evaluate", str(bank), "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0


@pytest.mark.parametrize(("backbone", "method", "match"), [
    ("swin-t", "dino", "ViT-family"),
    ("resnet50", "dino-mim", "ViT-family"),
    ("dinov2-s-reg", "pass", "registers"),
])
def test_pretrain_says_which_combinations_are_unsupported(
    backbone: str, method: str, match: str
) -> None:
    cfg = PretrainConfig(data="x", output="y", backbone=backbone, method=method)
    with pytest.raises(ReidError, match=match):
        cfg.resolved()


def test_pretrain_accepts_dinov2() -> None:
    cfg = PretrainConfig(data="x", output="y", backbone="dinov2-s", method="dino-mim").resolved()
    assert cfg.backbone == "dinov2-s"


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def test_family_recipes() -> None:
    from reidcli.training.config import resolve_config

    bot = resolve_config(RECIPES / "bot_resnet50_market.toml", {"output": "r"}).validate()
    assert (bot.backbone, bot.optimizer, bot.lr, bot.wd) == ("resnet50", "adam", 3.5e-4, 5e-4)
    assert bot.lr_schedule == "step" and bot.lr_steps == (40, 70) and bot.warmup_epochs == 10
    assert bot.label_smoothing == 0.1 and bot.erase_prob == 0.5 and bot.margin == 0.3
    probe = resolve_config(RECIPES / "dinov2_vitl_frozen_market.toml", {"output": "r"})
    assert probe.freeze_backbone and probe.backbone == "dinov2-l" and probe.optimizer == "adam"
    for size, lrs in (("t", (8e-4, 8e-4)), ("s", (8e-4, 2e-4)), ("b", (8e-4, 2e-4))):
        for data, lr in zip(("market", "msmt17"), lrs, strict=True):
            cfg = resolve_config(RECIPES / f"solider_swin{size}_{data}.toml", {"output": "r"})
            assert cfg.backbone == f"swin-{size}" and cfg.semantic_weight == 0.2
            assert cfg.lr == lr and cfg.size == (384, 128) and cfg.warmup_epochs == 20
