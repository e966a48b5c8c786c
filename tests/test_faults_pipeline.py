"""Crash `reid extract`, `cfs-filter`, `rerank`, `finetune` and `pretrain` at named write
points (REIDCLI_CRASH_AT); the rerun or `--resume` must give what an uninterrupted run gives,
and leave no temporary file behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _cfs_data import write_proxy, write_source
from _faults import expect_crash, expect_ok, h5_content, leftovers, reid
from _training_data import tiny_config, write_market
from PIL import Image
from safetensors.torch import load_file

from reidcli.models.checkpoint import save_model
from reidcli.models.config import ModelConfig
from reidcli.models.reid_model import build_model
from reidcli.retrieval.bank import write_bank
from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits
from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.config import config_to_toml as pretrain_toml
from reidcli.training.config import config_to_toml

pytestmark = pytest.mark.slow

TIMING = ("images_per_s", "epoch_time_s", "eval_time_s", "peak_memory_mb", "loader_wait_s")


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return write_market(tmp_path_factory.mktemp("market"), train_ids=6, test_ids=3)


def _metrics(run: Path) -> list[dict]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _crash_then_rerun(folder: Path, args: list[str], point: str, again: list[str] | None = None
                      ) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    expect_crash(reid(*args, crash_at=point), point)
    result = reid(*(again or args))
    expect_ok(result)
    return result.stderr


# -- extract -----------------------------------------------------------------------------
@pytest.mark.parametrize("point", ["partial.chunk-open@2", "atomic.written:bank.h5",
                                   "partial.final-renamed"])
def test_extract_crash_then_rerun(market: Path, tmp_path_factory, point: str) -> None:
    root = tmp_path_factory.getbasetemp() / "extract"
    model = root / "model"
    if not model.exists():
        cfg = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32), drop_path=0.0)
        torch.manual_seed(0)
        save_model(model, build_model(cfg), cfg)

    def args(out: Path) -> list[str]:
        return ["extract", "-c", str(model), "--data", f"market1501:{market}", "-o", str(out),
                "-b", "3", "-j", "0", "--device", "cpu"]

    ref = root / "ref" / "bank.h5"
    if not ref.exists():
        ref.parent.mkdir(parents=True)
        expect_ok(reid(*args(ref)))
    out = root / point.replace(":", "_").replace("@", "_") / "bank.h5"
    log = _crash_then_rerun(out.parent, args(out), point)
    if point == "partial.chunk-open@2":  # the query chunk was committed: not redone
        assert "resuming" in log and "query=6" in log, log
    assert h5_content(out) == h5_content(ref)
    assert leftovers(out.parent, {"bank.h5"}) == []


# -- cfs-filter scoring ------------------------------------------------------------------
@pytest.mark.parametrize("point", ["partial.chunk-open", "partial.chunk-committed",
                                   "atomic.written:sel.txt"])
def test_cfs_filter_crash_then_rerun(tmp_path_factory, point: str) -> None:
    root = tmp_path_factory.getbasetemp() / "cfs"
    source, s, t = root / "lup", root / "s", root / "t"
    if not source.exists():
        write_source(source, 12)
        write_proxy(s, seed=0)
        write_proxy(t, seed=1)

    def args(folder: Path) -> list[str]:
        return ["cfs-filter", "--source", f"luperson:{source}", "--keep-count", "4",
                "-o", str(folder / "sel.txt"), "--scores", str(folder / "scores.h5"),
                "--source-model", str(s), "--target-model", str(t), "-j", "0",
                "--device", "cpu", "-b", "5"]

    ref = root / "ref"
    if not ref.exists():
        ref.mkdir()
        expect_ok(reid(*args(ref)))
    out = root / point.replace(":", "_")
    _crash_then_rerun(out, args(out), point)
    assert h5_content(out / "scores.h5") == h5_content(ref / "scores.h5")

    def body(path: Path) -> list[str]:
        return [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]

    assert body(out / "sel.txt") == body(ref / "sel.txt")
    assert leftovers(out, {"sel.txt", "scores.h5"}) == []


# -- rerank ------------------------------------------------------------------------------
@pytest.mark.parametrize("point", ["atomic.created:rr.h5", "atomic.written:rr.h5"])
def test_rerank_crash_leaves_nothing_and_rerun_cleans_up(tmp_path: Path, point: str) -> None:
    bank = tmp_path / "bank.h5"
    write_bank(bank, synthetic_splits(SyntheticSpec(10, 40, 8, dim=8, num_cams=2, seed=0)))
    args = ["rerank", str(bank), "-o", str(tmp_path / "{}" / "rr.h5"), "--device", "cpu"]
    ref = [a.format("ref") for a in args]
    (tmp_path / "ref").mkdir()
    expect_ok(reid(*ref))
    run = [a.format("run") for a in args]
    (tmp_path / "run").mkdir()
    expect_crash(reid(*run, crash_at=point), point)
    assert not (tmp_path / "run" / "rr.h5").exists()
    assert len(leftovers(tmp_path / "run", set())) == 1  # the dead run's temporary file
    expect_ok(reid(*run))
    assert h5_content(tmp_path / "run" / "rr.h5") == h5_content(tmp_path / "ref" / "rr.h5")
    assert leftovers(tmp_path / "run", {"rr.h5"}) == []


# -- finetune ----------------------------------------------------------------------------
RUN_FILES = {"config.toml", "model.safetensors", "model.json", "best", "trainer.pt",
             "metrics.jsonl", "train.log"}


@pytest.fixture(scope="module")
def finetune_ref(market: Path, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("finetune")
    recipe = root / "recipe.toml"
    recipe.write_text(config_to_toml(tiny_config(market, root / "unused", eval_every=1)))
    expect_ok(reid("finetune", "--recipe", str(recipe), "-o", str(root / "ref")))
    return recipe, root / "ref"


# train.step@2: killed in epoch 1, nothing committed (--resume starts the run); the first
# trainer.pt written but not renamed: the same, plus a temporary file to clean; a kill in
# the middle of epoch 2 (steps counted from the reference run): resumed after epoch 1.
@pytest.mark.parametrize("point", ["train.step@2", "atomic.written:trainer.pt@1", "epoch2"])
def test_finetune_crash_then_resume(finetune_ref, tmp_path: Path, point: str) -> None:
    recipe, ref = finetune_ref
    nothing_committed = point != "epoch2"
    if point == "epoch2":
        point = f"train.step@{_metrics(ref)[0]['steps'] + 2}"
    out = tmp_path / "run"
    log = _crash_then_rerun(out, ["finetune", "--recipe", str(recipe), "-o", str(out)], point,
                            ["finetune", "-o", str(out), "--resume"])
    if nothing_committed:
        assert "nothing of this run was committed" in log
    _same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert _metrics(out) == _metrics(ref)
    assert leftovers(out, RUN_FILES) == [] and leftovers(out / "best", {"model.safetensors",
                                                                        "model.json"}) == []


# -- pretrain ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pretrain_ref(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pretrain")
    images = root / "lup"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(
            images / f"{i}.png")
    cfg = PretrainConfig(
        data=f"luperson:{images}", output=str(root / "unused"), global_size=(64, 32),
        local_size=(32, 16), local_crops=2, part_crops=1, backbone="vit-tiny-test", out_dim=64,
        head_hidden=32, head_bottleneck=16, batch_size=4, epochs=2, warmup_epochs=1, workers=0,
        warmup_patch_temp_epochs=1, checkpoint_every=1)
    recipe = root / "recipe.toml"
    recipe.write_text(pretrain_toml(cfg.resolved()))
    expect_ok(reid("pretrain", "--recipe", str(recipe), "-o", str(root / "ref")))
    return recipe, root / "ref"


# 2 iterations per epoch, a checkpoint after each: train.step@3 dies in the middle of the
# second epoch (its metric sums come from trainer.pt), the first trainer.pt not renamed
# leaves nothing committed.
@pytest.mark.parametrize("point", ["train.step@3", "atomic.written:trainer.pt@1"])
def test_pretrain_crash_then_resume(pretrain_ref, tmp_path: Path, point: str) -> None:
    recipe, ref = pretrain_ref
    out = tmp_path / "run"
    log = _crash_then_rerun(out, ["pretrain", "--recipe", str(recipe), "-o", str(out)], point,
                            ["pretrain", "-o", str(out), "--resume"])
    if point.startswith("atomic"):
        assert "nothing of this run was committed" in log
    _same_weights(ref / "model.safetensors", out / "model.safetensors")
    assert _metrics(out) == _metrics(ref)
    assert all(r["complete"] for r in _metrics(out))
    a = torch.load(ref / "trainer.pt", weights_only=True)
    b = torch.load(out / "trainer.pt", weights_only=True)
    assert all(torch.equal(v, b["teacher"][k]) for k, v in a["teacher"].items())
    assert leftovers(out, RUN_FILES) == []
