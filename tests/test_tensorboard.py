"""`--tensorboard`: the metrics.jsonl scalars as event files, with resumes that never log a
step twice."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from _training_data import tiny_config, write_market
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_ssl_engine import tiny
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.errors import ReidError
from reidcli.runtime.rundir import RunDir
from reidcli.runtime.tensorboard import metrics_sink, scalars
from reidcli.ssl.engine import pretrain
from reidcli.training import Hooks, finetune


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(RunDir(run).tensorboard_dir))
    acc.Reload()
    return acc


def _steps(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_market(tmp_path_factory.mktemp("data") / "market", train_ids=8, test_ids=3)


def test_scalar_tags_of_a_record() -> None:
    record = {"epoch": 3, "loss": 1.5, "id_loss": 1.0, "loss_cls": 2.0, "lr": 1e-3, "acc": 0.5,
              "mAP": 0.4, "complete": True, "steps": 4, "teacher_entropy": 0.9,
              "eval": {"viper": {"mAP": 0.2}}}
    assert scalars(record) == {
        "loss/loss": 1.5, "loss/id_loss": 1.0, "loss/loss_cls": 2.0, "train/lr": 1e-3,
        "train/acc": 0.5, "eval/mAP": 0.4, "train/teacher_entropy": 0.9,
        "eval/viper/mAP": 0.2}


def test_finetune_events_match_metrics_and_a_resume_purges_redone_epochs(
    market: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    saved = tmp_path / "after_epoch_1"

    def keep_epoch_1(info) -> None:
        if info.epoch == 1:
            shutil.copytree(out, saved)

    cfg = tiny_config(market, out, epochs=3, eval_every=1, tensorboard=True)
    finetune(cfg, Hooks(on_epoch_end=keep_epoch_1))
    acc = _events(out)
    records = RunDir(out).read_metrics()
    assert _steps(acc, "loss/loss") == [1, 2, 3]
    assert [e.value for e in acc.Scalars("eval/mAP")] == pytest.approx(
        [r["mAP"] for r in records])
    assert {"loss/id_loss", "loss/triplet_loss", "train/lr", "train/acc",
            "train/images_per_s", "eval/R1", "eval/mINP"} <= set(acc.Tags()["scalars"])
    # Back to the checkpoint of epoch 1, with the events of epochs 2-3 still on disk (as
    # after a crash between logging and checkpointing): the resumed run redoes them, and
    # TensorBoard keeps one value per step.
    for name in ("trainer.pt", "metrics.jsonl"):
        shutil.copy(saved / name, out / name)
    finetune(tiny_config(market, out, epochs=3, eval_every=1, tensorboard=True, resume=True))
    acc = _events(out)
    assert _steps(acc, "loss/loss") == [1, 2, 3]
    assert _steps(acc, "eval/mAP") == [1, 2, 3]


def test_tensorboard_turned_on_at_resume_logs_the_earlier_epochs(
    market: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"

    def stop(info) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_config(market, out, epochs=2), Hooks(on_epoch_end=stop))
    assert not RunDir(out).tensorboard_dir.exists()
    finetune(tiny_config(market, out, epochs=2, resume=True, tensorboard=True))
    acc = _events(out)
    assert _steps(acc, "loss/loss") == [1, 2] and _steps(acc, "eval/mAP") == [2]


def test_pretrain_events_by_iteration_and_a_mid_epoch_resume(tmp_path: Path) -> None:
    root = tmp_path / "lup"
    root.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(8):
        pixels = torch.randint(0, 255, (64, 32, 3), generator=gen, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(root / f"{i}.png")
    (root / "list.txt").write_text("".join(f"{i}.png\n" for i in range(8)))
    out = tmp_path / "pt"
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        # 8 images in batches of 4: 2 iterations per epoch; stop inside epoch 1.
        pretrain(tiny(root, out, max_iters=3, tensorboard=True))
        assert _steps(_events(out), "loss/loss") == [2, 3]
        pretrain(tiny(root, out, resume=True, tensorboard=True))
    acc = _events(out)
    # The partial record of iteration 3 is purged; epoch 1 is logged once, at its end.
    assert _steps(acc, "loss/loss") == [2, 4]
    assert [r["iteration"] for r in RunDir(out).read_metrics()] == [2, 4]
    assert {"train/teacher_entropy", "train/centre_norm", "train/lr",
            "train/images_per_s"} <= set(acc.Tags()["scalars"])


def test_without_tensorboard_installed_the_error_says_what_to_install(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ReidError, match=r"pip install 'reidcli\[tensorboard\]'"):
        metrics_sink(True, RunDir(tmp_path), [], "epoch")
    result = CliRunner().invoke(app, [
        "finetune", "--data", f"market1501:{market}", "--backbone", "vit-tiny-test",
        "--size", "64x32", "--epochs", "1", "--warmup-epochs", "0", "--batch", "4x2",
        "--workers", "0",
        "--device", "cpu", "--tensorboard", "-o", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "pip install 'reidcli[tensorboard]'" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()  # stopped before anything was written
