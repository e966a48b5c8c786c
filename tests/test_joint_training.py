"""Joint training on several datasets and evaluation on several: ranges, sampling, records."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_data import tiny_config, write_market
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.data.joint import Source, camera_offset, options_for, spec_labels
from reidcli.data.sampler import PKSampler
from reidcli.errors import DatasetError, ReidError, UsageError
from reidcli.runs import summarise_run
from reidcli.runtime.rundir import RunDir
from reidcli.training import Hooks, finetune
from reidcli.training.config import load_run_config, resolve_config


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("worlds")
    # A: 8 ids x 2 cameras x 2 images = 32 train images; B: 4 ids x 3 cameras x 4 = 48.
    a = write_market(root / "worldA", train_ids=8, test_ids=3, cams=2, per_cam=2, seed=1)
    b = write_market(root / "worldB", train_ids=4, test_ids=3, cams=3, per_cam=4, seed=2)
    return a, b


def _specs(worlds: tuple[Path, Path]) -> tuple[str, str]:
    return f"market1501:{worlds[0]}", f"market1501:{worlds[1]}"


def test_labels_options_and_offsets() -> None:
    assert spec_labels(["market1501", "msmt17:/d/MSMT17_V1"]) == ["market1501", "msmt17"]
    assert spec_labels(["market1501:/x/a", "market:/y/b"]) == ["market1501", "market"]
    assert spec_labels(["market1501:/x/a", "market1501:/y/b"]) == [
        "market1501:a", "market1501:b"]
    assert spec_labels(["market1501:/x/a", "market1501:/y/a"]) == [
        "market1501:a#1", "market1501:a#2"]
    pairs = ["keep=0.5", "folder.pattern=x(?P<pid>\\d+).c=(?P<cam>\\d)", "2.cam_base=0"]
    assert options_for(pairs, "luperson:/l", 1) == {"keep": "0.5"}
    assert options_for(pairs, "folder:/f", 2) == {
        "keep": "0.5", "pattern": "x(?P<pid>\\d+).c=(?P<cam>\\d)", "cam_base": "0"}
    assert options_for(pairs, "folder:/f", None) == {  # evaluation only: named ones only
        "pattern": "x(?P<pid>\\d+).c=(?P<cam>\\d)"}
    # Aliases name the same dataset: `market.` options reach `market1501:...`.
    assert options_for(["market.x=1"], "market1501:/m", None) == {"x": "1"}
    sources = [Source("a", "market1501", "/d/a", 0, 8, 0, 2),
               Source("b", "msmt17", "/d/b", 8, 4, 2, 15)]
    assert camera_offset(sources, "msmt17", "/elsewhere") == 2  # by its unique name
    assert camera_offset(sources, "market1501", "/d/a") == 0  # by its folder
    assert camera_offset(sources, "dukemtmc", "/d/c") is None  # unknown cameras
    twins = [Source("a", "market1501", "/d/a", 0, 8, 0, 2),
             Source("b", "market1501", "/d/b", 8, 4, 2, 3)]
    assert camera_offset(twins, "market1501", "/d/b") == 2
    assert camera_offset(twins, "market1501", "/d/c") is None  # ambiguous name


def _shares(sampler: PKSampler, domain: np.ndarray, epochs: int) -> tuple[float, set[int]]:
    """Share of dataset 1 among all sampled images, and the per-batch counts of dataset 1."""
    counts: Counter[int] = Counter()
    per_batch: set[int] = set()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler.global_batches():
            d = domain[batch]
            counts.update(d.tolist())
            per_batch.add(int((d == 1).sum()))
    return counts[1] / (counts[0] + counts[1]), per_batch


def test_sampler_shares_follow_image_counts_or_are_balanced() -> None:
    # Dataset 0: 30 ids x 8 images (240); dataset 1: 10 ids x 8 images (80) -> 25% of images.
    pids = np.repeat(np.arange(40), 8)
    domain = (pids >= 30).astype(np.int64)
    plain = PKSampler(pids.tolist(), p=4, k=4, seed=3, domains=domain.tolist())
    share, _ = _shares(plain, domain, 30)
    assert share == pytest.approx(0.25, abs=0.03)
    balanced = PKSampler(pids.tolist(), p=4, k=4, seed=3, domains=domain.tolist(), balance=True)
    share, per_batch = _shares(balanced, domain, 30)
    assert share == 0.5 and per_batch == {8}  # 2 of the 4 ids (x K=4 images) every batch
    balanced.set_epoch(0)
    plain.set_epoch(0)
    assert len(balanced) == len(plain)  # the epoch keeps its length
    # An odd P: the extra identity alternates, so the shares still even out.
    odd = PKSampler(pids.tolist(), p=3, k=4, seed=3, domains=domain.tolist(), balance=True)
    share, per_batch = _shares(odd, domain, 10)
    assert per_batch == {4, 8} and share == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="one has only 1"):
        PKSampler([0, 0, 1, 1, 2, 2], p=3, k=2, domains=[0, 0, 0, 0, 1, 1], balance=True)


def test_joint_run_ranges_evaluations_and_compare(worlds, tmp_path: Path) -> None:
    a, b = _specs(worlds)
    out = tmp_path / "joint"
    seen: list[torch.Tensor] = []
    result = finetune(
        tiny_config(worlds[0], out, data=[a, b], sie=True, epochs=2, eval_every=1,
                    data_balance=True, ids_per_batch=4, images_per_id=2),
        Hooks(on_batch=lambda info: seen.append(info.indices)),
    )
    cfg = json.loads((out / "model.json").read_text())
    assert cfg["num_classes"] == 12 and cfg["num_cams"] == 5
    ranges = [(s["label"], s["pid_offset"], s["num_pids"], s["cam_offset"], s["num_cams"])
              for s in cfg["sources"]]
    assert ranges == [("market1501:worldA", 0, 8, 0, 2), ("market1501:worldB", 8, 4, 2, 3)]
    assert cfg["sources"][1]["root"] == str(worlds[1].resolve())
    text = (out / "config.toml").read_text()
    assert "# market1501:worldA: ids 0..7, cameras 0..1" in text
    assert "# market1501:worldB: ids 8..11, cameras 2..4" in text
    saved = load_run_config(out)
    assert saved.data == (a, b) and saved.data_balance
    # --data-balance reached the trainer: 2 of the 4 identities of every batch per world.
    for indices in seen:
        assert sorted(Counter(int(i) >= 32 for i in indices.tolist()).values()) == [4, 4]
    records = RunDir(out).read_metrics()
    for r in records:
        assert set(r["eval"]) == {"market1501:worldA", "market1501:worldB"}
        assert r["mAP"] == r["eval"]["market1501:worldA"]["mAP"]  # the first is the run's
        assert {"mAP", "R1", "R5", "R10", "mINP"} <= set(r["eval"]["market1501:worldB"])
    assert result.evaluations == records[-1]["eval"]
    values = summarise_run(out).values
    assert values["mAP [market1501:worldA]"] == records[-1]["eval"]["market1501:worldA"]["mAP"]
    assert values["R1 [market1501:worldB]"] == records[-1]["eval"]["market1501:worldB"]["R1"]
    assert not any(k.startswith("mAP [market1501:/") for k in values)  # no duplicate column


def test_extract_gives_a_known_dataset_its_cameras(worlds, tmp_path: Path) -> None:
    from reidcli.inference.extract import ExtractOptions, extract_bank
    from reidcli.retrieval.bank import read_bank

    a, b = _specs(worlds)
    out = tmp_path / "joint"
    finetune(tiny_config(worlds[0], out, data=[a, b], sie=True, epochs=1))
    # A copy of world B under another name and folder: a dataset the model never saw.
    other = tmp_path / "other"
    other.mkdir()
    for split in ("query", "bounding_box_test"):
        (other / split).symlink_to(worlds[1] / split)
    banks = {}
    for name, spec in (("b", b), ("other", f"folder:{other}")):
        opts = ExtractOptions(out, tmp_path / f"{name}.h5", data=spec, splits=("query",),
                              workers=0, device="cpu", progress=False)
        extract_bank(opts)
        with read_bank(opts.output) as bank:
            banks[name] = bank.query.load()
    # The bank keeps the dataset's own camera ids; the model saw them shifted by B's range.
    assert set(banks["b"].camids.tolist()) == {0, 1, 2}
    from reidcli.models import load_model

    model, _ = load_model(out)
    model.eval()
    first = torch.stack([_image(worlds[1], banks["b"].paths[0])])
    cam = int(banks["b"].camids[0])
    with torch.no_grad():
        shifted = model(first, torch.tensor([cam + 2]), None)
        unknown = model(first, torch.tensor([-1]), None)
    np.testing.assert_allclose(banks["b"].feats[0], shifted[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(banks["other"].feats[0], unknown[0].numpy(), rtol=1e-4,
                               atol=1e-5)


def _image(root: Path, path: str) -> torch.Tensor:
    from reidcli.data.images import read_image
    from reidcli.data.transforms import build_test_transform

    return build_test_transform((64, 32), (0.5,) * 3, (0.5,) * 3)(read_image(path))


def test_cli_repeats_data_and_eval_data(worlds, tmp_path: Path) -> None:
    a, b = _specs(worlds)
    out = tmp_path / "cli"
    args = ["finetune", "--data", a, "--eval-data", b, "--eval-data", a, "-o", str(out),
            "--backbone", "vit-tiny-test", "--size", "64x32", "--epochs", "1", "--batch", "4x2",
            "--workers", "0", "--device", "cpu", "--warmup-epochs", "0"]
    result = CliRunner().invoke(app, ["-q", *args])
    assert result.exit_code == 0, result.output
    (record,) = RunDir(out).read_metrics()
    assert set(record["eval"]) == {"market1501:worldB", "market1501:worldA"}
    assert record["mAP"] == record["eval"]["market1501:worldB"]["mAP"]  # the first given
    assert load_run_config(out).eval_data == (b, a)


class _Stop(Exception):
    pass


def _stop_after_first(info) -> None:
    if info.epoch == 1:
        raise _Stop


def test_a_config_with_single_strings_resumes(worlds, tmp_path: Path) -> None:
    """config.toml of a run made before data/eval_data became lists: single strings, which
    is also how a run with one of each writes them still (older versions can read it)."""
    a, b = _specs(worlds)
    out = tmp_path / "old"
    with pytest.raises(_Stop):
        finetune(tiny_config(worlds[0], out, eval_data=b), Hooks(on_epoch_end=_stop_after_first))
    text = (out / "config.toml").read_text()
    assert f'data = "{a}"' in text and f'eval_data = "{b}"' in text
    result = CliRunner().invoke(app, ["-q", "finetune", "-o", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    records = RunDir(out).read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    assert list(records[1]["eval"]) == ["market1501"] and records[1]["mAP"] >= 0


def test_single_strings_and_bad_lists(worlds, tmp_path: Path) -> None:
    a, b = _specs(worlds)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[data]\ndata = "{a}"\neval_data = "{b}"\n')
    cfg = resolve_config(recipe, {"output": str(tmp_path / "o")})
    assert cfg.data == (a,) and cfg.eval_data == (b,)
    recipe.write_text(f'[data]\ndata = ["{a}", "{b}"]\n')
    assert resolve_config(recipe, {}).data == (a, b)
    with pytest.raises(UsageError, match="names a dataset twice"):
        tiny_config(worlds[0], tmp_path / "o", data=[a, a]).validate()
    with pytest.raises(DatasetError, match="'msmt17' names no dataset"):
        finetune(tiny_config(worlds[0], tmp_path / "o2", data=[a, b],
                             data_options=("msmt17.keep=1",)))
    with pytest.raises(ReidError, match="no option 'pattern'"):
        finetune(tiny_config(worlds[0], tmp_path / "o3", data=[a, b],
                             data_options=("2.pattern=x",)))
