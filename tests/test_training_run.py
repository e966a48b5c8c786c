"""End-to-end fine-tuning on a tiny dataset: run directory, resume bit for bit, failures."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch
from _training_data import ABORT, tiny_config, write_market
from safetensors.torch import load_file

from reidcli.errors import TrainingError
from reidcli.training import Hooks, finetune, load_run_config, resume_config
from reidcli.training.losses import ReidLoss


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_market(tmp_path_factory.mktemp("data") / "market", train_ids=8, test_ids=3)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def test_run_directory_layout(market: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = finetune(tiny_config(market, out, eval_every=1))
    for name in ("config.toml", "model.safetensors", "model.json", "trainer.pt",
                 "metrics.jsonl", "train.log", "best/model.safetensors", "best/model.json"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all("mAP" in r and "loss" in r and "lr" in r for r in records)
    assert all(0 <= r["loader_wait_s"] <= r["epoch_time_s"] for r in records)
    assert result.best_epoch in (1, 2) and result.final["mAP"] == records[-1]["mAP"]
    saved = tomllib.loads((out / "config.toml").read_text())
    assert saved["optim"]["lr"] == 0.01 and saved["model"]["backbone"] == "vit-tiny-test"
    assert "output" not in json.dumps(saved)
    # The saved config reads back as the same configuration.
    assert load_run_config(out) == tiny_config(market, out, eval_every=1, resume=True)
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["num_classes"] == 8 and model_json["img_size"] == [64, 32]
    log = (out / "train.log").read_text()
    assert "epoch 2/2" in log and "mAP" in log


def test_epoch_learning_rates_follow_the_schedule(market: Path, tmp_path: Path) -> None:
    result = finetune(tiny_config(market, tmp_path / "run", epochs=3, warmup_epochs=2))
    lrs = [r["lr"] for r in result.metrics]
    # warm-up from 0.01*lr over 2 epochs, then cosine over all 3 epochs to 0.002*lr
    assert lrs[0] == pytest.approx(1e-4 + (0.01 - 1e-4) / 2)
    assert lrs[1] == pytest.approx(2e-5 + 0.5 * (0.01 - 2e-5) * (1 + torch.cos(
        torch.tensor(2 * torch.pi / 3)).item()))
    assert lrs[2] == pytest.approx(2e-5)


def test_resume_is_bit_for_bit(market: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    finetune(tiny_config(market, straight, eval_every=1))

    interrupted = tmp_path / "interrupted"

    def stop_after_first(info) -> None:
        if info.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_config(market, interrupted, eval_every=1),
                 Hooks(on_epoch_end=stop_after_first))
    assert torch.load(interrupted / "trainer.pt", weights_only=True)["epoch"] == 1
    result = finetune(resume_config(interrupted, {"progress": False}))
    assert result.start_epoch == 2

    a, b = _weights(straight), _weights(interrupted)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ma = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (interrupted / "metrics.jsonl").read_text().splitlines()]
    drop = ("images_per_s", "epoch_time_s", "eval_time_s", "loader_wait_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in ma] == \
        [{k: v for k, v in r.items() if k not in drop} for r in mb]


def test_resume_refuses_changed_training_options(market: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    finetune(tiny_config(market, out, epochs=1, warmup_epochs=0))
    with pytest.raises(TrainingError, match="lr"):
        finetune(resume_config(out, {"lr": 0.5}))
    with pytest.raises(TrainingError, match="--resume"):
        finetune(tiny_config(market, out, epochs=1, warmup_epochs=0))
    # Precision may change on resume (a way past a non-finite loss); the run is complete,
    # so nothing more is trained.
    result = finetune(resume_config(out, {"amp": "bf16", "progress": False}))
    assert result.start_epoch == 2 and len(result.metrics) == 1


def test_resume_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="config.toml"):
        resume_config(tmp_path / "nothing")
    (tmp_path / "killed").mkdir()  # a run killed before it wrote anything
    with pytest.raises(TrainingError, match="nothing of a run was committed .* without --resume"):
        resume_config(tmp_path / "killed")


def test_non_finite_loss_stops_and_keeps_last_checkpoint(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    original = ReidLoss.forward
    state = {"epoch": 0}

    def poisoned(self, logits, feats, targets):
        parts = original(self, logits, feats, targets)
        if state["epoch"] == 2:
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(ReidLoss, "forward", poisoned)

    def track(info) -> None:
        state["epoch"] = info.epoch + 1

    with pytest.raises(TrainingError, match="non-finite loss.*epoch 2.*epoch 1") as err:
        finetune(tiny_config(market, out), Hooks(on_epoch_end=track))
    assert ABORT.fullmatch(str(err.value)), str(err.value)
    saved = torch.load(out / "trainer.pt", weights_only=True)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in _weights(out).values() if v.is_floating_point())


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_modes_train_on_cpu(market: Path, tmp_path: Path, amp: str) -> None:
    result = finetune(tiny_config(market, tmp_path / "run", epochs=1, warmup_epochs=0, amp=amp))
    assert result.metrics[0]["loss"] > 0
    saved = torch.load(tmp_path / "run" / "trainer.pt", weights_only=True)
    assert saved["scaler"]["scale"] > 0 if amp == "fp16" else saved["scaler"] == {}


def test_jpm_and_sie_train(market: Path, tmp_path: Path) -> None:
    result = finetune(tiny_config(market, tmp_path / "run", epochs=1, warmup_epochs=0,
                                  jpm=True, jpm_groups=2, jpm_shift=2, sie=True))
    assert result.metrics[0]["loss"] > 0
    cfg = json.loads((tmp_path / "run" / "model.json").read_text())
    assert cfg["jpm"] and cfg["sie_camera"] and cfg["num_cams"] == 2


def test_pretrained_run_normalisation_carries_over(market: Path, tmp_path: Path) -> None:
    from reidcli.models import ModelConfig, build_model, save_model

    imagenet = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32),
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    save_model(tmp_path / "ssl", build_model(imagenet), imagenet)
    finetune(tiny_config(market, tmp_path / "run", epochs=1, warmup_epochs=0,
                         pretrained=str(tmp_path / "ssl")))
    cfg = json.loads((tmp_path / "run" / "model.json").read_text())
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]
    finetune(tiny_config(market, tmp_path / "own", epochs=1, warmup_epochs=0,
                         pretrained=str(tmp_path / "ssl"), mean=(0.5, 0.5, 0.5)))
    assert json.loads((tmp_path / "own" / "model.json").read_text())["mean"] == [0.5] * 3
    # The weights file named directly carries the same normalisation.
    finetune(tiny_config(market, tmp_path / "file", epochs=1, warmup_epochs=0,
                         pretrained=str(tmp_path / "ssl" / "model.safetensors")))
    cfg = json.loads((tmp_path / "file" / "model.json").read_text())
    assert cfg["mean"] == [0.485, 0.456, 0.406] and cfg["std"] == [0.229, 0.224, 0.225]


def test_normalisation_mismatch_with_the_checkpoint_warns(
    market: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from reidcli.models import ModelConfig, build_model, save_model
    from reidcli.training.normalisation import pretrained_normalisation

    imagenet = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32),
                           mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    save_model(tmp_path / "ssl", build_model(imagenet), imagenet)
    weights = str(tmp_path / "ssl" / "model.safetensors")
    with caplog.at_level("WARNING"):
        pretrained_normalisation(tiny_config(market, tmp_path / "a", pretrained=weights))
        pretrained_normalisation(tiny_config(market, tmp_path / "b", pretrained=weights,
                                             mean=(0.485, 0.456, 0.406)))
    assert caplog.records == []  # nothing set, or set to the checkpoint's own values
    with caplog.at_level("WARNING"):
        pretrained_normalisation(tiny_config(market, tmp_path / "c", pretrained=weights,
                                             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    [record] = caplog.records
    caplog.clear()
    message = record.getMessage()
    assert "\n" not in message and "mean (0.5, 0.5, 0.5)" in message
    assert "(mean (0.485, 0.456, 0.406) std (0.229, 0.224, 0.225))" in message
    # An export whose config cannot be read: one warning, the backbone's default.
    (tmp_path / "ssl" / "model.json").write_text("{not json")
    with caplog.at_level("WARNING"):
        norm = pretrained_normalisation(tiny_config(market, tmp_path / "d",
                                                    pretrained=str(tmp_path / "ssl")))
    assert norm == (None, None) and len(caplog.records) == 1
    assert "no normalisation from" in caplog.records[0].getMessage()
