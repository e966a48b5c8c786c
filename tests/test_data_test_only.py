"""Test-only datasets (query + gallery, no train folder, as CUHK01 / VIPeR / PRID / GRID ship
for cross-domain testing): valid for extract and evaluate; only training needs a train split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _training_data import tiny_config
from _training_data import write_market as write_market_images
from test_data_trees import write_image, write_market
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.data import load_dataset
from reidcli.data.loading import parse_dataset
from reidcli.errors import DatasetError
from reidcli.models.checkpoint import save_model
from reidcli.models.config import ModelConfig
from reidcli.models.reid_model import build_model
from reidcli.retrieval.bank import read_bank
from reidcli.training import finetune

runner = CliRunner()


def _test_only(root: Path, keep_empty_train: bool = False) -> Path:
    write_market(root)
    shutil.rmtree(root / "bounding_box_train")
    if keep_empty_train:
        (root / "bounding_box_train").mkdir()
    return root


@pytest.mark.parametrize("keep_empty_train", [False, True])
def test_market_layout_without_train_loads_for_evaluation(
    tmp_path: Path, keep_empty_train: bool
) -> None:
    root = _test_only(tmp_path / "viper", keep_empty_train)
    dataset = load_dataset(f"market1501:{root}")
    assert len(dataset.query) == 2 and len(dataset.gallery) == 3  # distractor kept, junk not
    assert dataset.num_cams == 3 and dataset.num_train_pids == 0
    with pytest.raises(DatasetError, match="has no training image .*test-only"):
        _ = dataset.train
    _, problems = parse_dataset(f"market1501:{root}")
    (warning,) = [p for p in problems if p.split == "train"]
    assert warning.severity == "warning" and warning.kind == "no train split"


def test_veri_layout_without_train_loads(tmp_path: Path) -> None:
    root = tmp_path / "veri"
    write_image(root / "image_query" / "0002_c002_00030600_0.jpg")
    write_image(root / "image_test" / "0002_c003_00084280_0.jpg")
    dataset = load_dataset(f"veri776:{root}")
    assert [r.pid for r in dataset.gallery] == [2] and dataset.splits["train"] == []


def test_without_train_query_and_gallery_are_still_required(tmp_path: Path) -> None:
    root = _test_only(tmp_path / "m")
    shutil.rmtree(root / "query")
    with pytest.raises(DatasetError, match=r"missing folder\(s\) query"):
        load_dataset(f"market1501:{root}")
    (root / "query").mkdir()
    # An empty train split is only a warning while the other two have images.
    _, problems = parse_dataset(f"market1501:{root}")
    assert {(p.split, p.severity) for p in problems if "usable" in p.message} == {
        ("train", "error"), ("query", "error")}


def test_datasets_check_reports_a_warning_not_an_error(tmp_path: Path) -> None:
    root = _test_only(tmp_path / "grid")
    result = runner.invoke(app, ["datasets", "check", f"market1501:{root}"])
    assert result.exit_code == 0, result.output
    assert "warning no train split [train]" in result.output
    assert "0 error(s), 2 warning(s)" in result.output  # and badname.jpg


def test_extract_runs_and_finetune_says_why_not(tmp_path: Path) -> None:
    root = write_market_images(tmp_path / "prid", train_ids=4, test_ids=3)
    shutil.rmtree(root / "bounding_box_train")
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32), drop_path=0.0)
    save_model(tmp_path / "model", build_model(cfg), cfg)
    bank = tmp_path / "bank.h5"
    result = runner.invoke(app, ["extract", "-c", str(tmp_path / "model"), "--data",
                                 f"market1501:{root}", "-o", str(bank), "--device", "cpu",
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
    with read_bank(bank) as b:
        assert len(b["query"]) == 6 and len(b["gallery"]) == 12
    with pytest.raises(DatasetError, match="no training image"):
        finetune(tiny_config(root, tmp_path / "run"))
