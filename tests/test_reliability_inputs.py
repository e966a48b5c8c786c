"""Hostile and malformed input: every case is refused up front with one line naming the file,
key or setting (exit 1, or 2 for bad usage), never a traceback; or, where the issue asks for
it, reported and handled (duplicates, broken links, a dataset that cannot be evaluated)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from _training_data import tiny_config, write_market
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.data import load_dataset
from reidcli.data.records import ImageRecord
from reidcli.errors import CheckpointError, DatasetError, ReidError, TrainingError
from reidcli.models import ModelConfig, build_model, load_model, save_model
from reidcli.models.layouts import read_source
from reidcli.retrieval.bank import write_bank
from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits
from reidcli.selection.score import relative_paths
from reidcli.training import Hooks, finetune, resume_config
from reidcli.training import engine as engine_module

runner = CliRunner()


def error_line(result, code: int, *needles: str) -> str:
    """The single `error:` line of a failed command, checked for exit code and contents."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_market(tmp_path_factory.mktemp("data") / "market", train_ids=8, test_ids=3)


def _copy_market(market: Path, dest: Path) -> Path:
    shutil.copytree(market, dest)
    return dest


# -- 11: settings that cannot work are bad usage (exit 2) ----------------------------------------
FINETUNE = ("finetune", "market1501", "fine-tuning")
PRETRAIN = ("pretrain", "luperson", "pre-training")


@pytest.mark.parametrize(("stage", "options", "setting"), [
    (FINETUNE, ["--lr", "nan"], "lr must be a finite number"),
    (FINETUNE, ["--lr", "inf"], "lr must be a finite number"),
    (FINETUNE, ["--workers", "-1"], "workers must be >= 0"),
    (FINETUNE, ["--lr", "-1"], "lr must be positive"),
    (FINETUNE, ["--epochs", "0"], "epochs must be >= 1"),
    (FINETUNE, ["--batch", "1x1"], "ids_per_batch must be >= 2"),
    (FINETUNE, ["--drop-path", "nan"], "drop_path must be a finite number"),
    (PRETRAIN, ["--lr", "nan"], "lr must be a finite number"),
    (PRETRAIN, ["--workers", "-1"], "workers must be >= 0"),
    (PRETRAIN, ["--epochs", "0"], "epochs must be >= 1"),
])
def test_settings_that_cannot_work_exit_2(
    tmp_path: Path, stage: tuple[str, str, str], options: list[str], setting: str
) -> None:
    command, dataset, what = stage
    result = runner.invoke(app, [command, "--data", f"{dataset}:{tmp_path}", "-o",
                                 str(tmp_path / "run"), *options])
    error_line(result, 2, f"invalid {what} configuration", setting)
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_key_is_bad_usage(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text("[optim]\nlrr = 0.1\n")
    result = runner.invoke(app, ["finetune", "--recipe", str(recipe), "--data", "market1501",
                                 "-o", str(tmp_path / "run")])
    error_line(result, 2, str(recipe), "unknown setting `lrr`", "did you mean `lr`")


# -- 6: damaged .safetensors files ----------------------------------------------------------------
def _damaged(kind: str, good: bytes) -> bytes:
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + n])
    body = good[8 + n:]
    key = next(k for k in header if k != "__metadata__")

    def with_header(h: dict) -> bytes:
        raw = json.dumps(h).encode()
        return struct.pack("<Q", len(raw)) + raw + body

    if kind == "random":
        return np.random.default_rng(0).bytes(300)
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) - 100]
    if kind == "size":  # the header claims to be larger than the file
        return struct.pack("<Q", len(good) * 10) + good[8:]
    if kind == "shape":
        return with_header({**header, key: {**header[key], "shape": [4096, 4096]}})
    if kind == "offset":
        end = header[key]["data_offsets"][1]
        return with_header({**header, key: {**header[key], "data_offsets": [0, end + 10**6]}})
    if kind == "config":  # valid tensors, but reidcli's `config` metadata is not JSON
        return with_header({**header, "__metadata__": {"config": "{not json"}})
    raise AssertionError(kind)


DAMAGE = ("random", "empty", "truncated", "size", "shape", "offset", "config")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    save_model(run, build_model(ModelConfig(backbone="vit-tiny-test", img_size=(64, 32),
                                            num_classes=4)))
    return run


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_safetensors_as_pretrained_names_the_file(
    tiny_run: Path, tmp_path: Path, kind: str
) -> None:
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(_damaged(kind, (tiny_run / "model.safetensors").read_bytes()))
    with pytest.raises(CheckpointError, match="weights.safetensors") as info:
        read_source(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_safetensors_in_a_run_directory_names_the_file(
    tiny_run: Path, tmp_path: Path, kind: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    weights = run / "model.safetensors"
    weights.write_bytes(_damaged(kind, weights.read_bytes()))
    with pytest.raises(CheckpointError, match=str(weights)):
        load_model(run)
    if kind != "config":  # the run directory as --pretrained reads model.json instead
        with pytest.raises(CheckpointError, match=str(weights)):
            read_source(run)


def test_damaged_pretrained_through_the_cli(market: Path, tmp_path: Path) -> None:
    bad = tmp_path / "init.safetensors"
    bad.write_bytes(b"")
    result = runner.invoke(app, ["finetune", "--data", f"market1501:{market}", "-o",
                                 str(tmp_path / "run"), "--backbone", "vit-tiny-test",
                                 "--size", "64x32", "--batch", "4x2", "--workers", "0",
                                 "--device", "cpu", "--pretrained", str(bad)])
    error_line(result, 1, str(bad), "not a readable safetensors file")


def test_damaged_run_directory_through_extract(
    tiny_run: Path, market: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.safetensors").write_bytes(b"\x00" * 64)
    result = runner.invoke(app, ["extract", "-c", str(run), "-o", str(tmp_path / "b.h5"),
                                 "--data", f"market1501:{market}", "--device", "cpu",
                                 "--workers", "0"])
    error_line(result, 1, str(run / "model.safetensors"))


# -- 8 and 18: links among dataset images ---------------------------------------------------------
def test_symlink_loop_is_reported_by_check_and_skipped_by_loading(
    market: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _copy_market(market, tmp_path / "m")
    train = root / "bounding_box_train"
    os.symlink(train / "0001_c9s1_000002_00.jpg", train / "0001_c9s1_000001_00.jpg")
    os.symlink(train / "0001_c9s1_000001_00.jpg", train / "0001_c9s1_000002_00.jpg")
    # What `reid finetune` loads: the loop is left out, with a warning naming it.
    dataset = load_dataset(f"market1501:{root}")
    assert not any("c9s1" in r.path for r in dataset.train)
    assert "c9s1_00000" in caplog.text and "cannot be followed" in caplog.text
    result = runner.invoke(app, ["datasets", "check", f"market1501:{root}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "broken link" in result.output and "0001_c9s1_000001_00.jpg" in result.output
    assert "cannot be followed" in result.output


def test_dangling_image_link_is_reported_not_dropped_silently(
    market: Path, tmp_path: Path
) -> None:
    root = _copy_market(market, tmp_path / "m")
    os.symlink(tmp_path / "gone.jpg", root / "query" / "0009_c1s1_000999_00.jpg")
    result = runner.invoke(app, ["datasets", "check", f"market1501:{root}", "--no-verify"])
    assert result.exit_code == 1, result.output
    assert "broken link [query]" in result.output
    assert "0009_c1s1_000999_00.jpg: a symbolic link to a missing file" in result.output


# -- 9 and 12: list files -------------------------------------------------------------------------
def _luperson(tmp_path: Path, lines: list[str] | bytes, n: int = 4) -> Path:
    root = tmp_path / "lup"
    (root / "imgs").mkdir(parents=True)
    from PIL import Image

    for i in range(n):
        Image.new("RGB", (32, 64), (10 * i, 0, 0)).save(root / "imgs" / f"{i}.jpg")
    data = lines if isinstance(lines, bytes) else "".join(f"{x}\n" for x in lines).encode()
    (root / "list.txt").write_bytes(data)
    return root


def test_list_with_invalid_utf8_names_line_and_byte(tmp_path: Path) -> None:
    root = _luperson(tmp_path, b"imgs/0.jpg\nimgs/1.jpg\nimgs/\xff2.jpg\n")
    result = runner.invoke(app, ["datasets", "check", f"luperson:{root / 'list.txt'}"])
    error_line(result, 1, str(root / "list.txt"), "not UTF-8", "line 3", "byte 6", "\\xff")


def test_subset_list_with_invalid_utf8(tmp_path: Path) -> None:
    root = _luperson(tmp_path, ["imgs/0.jpg"])
    (root / "subset.txt").write_bytes(b"\xc3(imgs/0.jpg\n")
    with pytest.raises(DatasetError, match=r"subset.txt is not UTF-8 text: line 1, byte 1"):
        load_dataset(f"luperson:{root}", subset="subset.txt")


@pytest.mark.parametrize("entry", ["../../outside.jpg", "imgs/../../x.jpg", "/etc/passwd"])
def test_list_paths_outside_the_root_are_refused_with_the_line(
    tmp_path: Path, entry: str
) -> None:
    root = _luperson(tmp_path, ["imgs/0.jpg", "# a comment", entry, "imgs/1.jpg"])
    result = runner.invoke(app, ["datasets", "check", f"luperson:{root / 'list.txt'}"])
    error_line(result, 1, f"{root / 'list.txt'} line 3", repr(entry), "outside")


def test_absolute_list_paths_inside_the_root_are_accepted(tmp_path: Path) -> None:
    root = _luperson(tmp_path, [])
    (root / "list.txt").write_text(f"{root / 'imgs' / '0.jpg'}\nimgs/sub/../1.jpg\n")
    paths = [r.path for r in load_dataset(f"luperson:{root}").train]
    assert paths == [str(root / "imgs" / "0.jpg"), str(root / "imgs" / "1.jpg")]


def test_msmt17_list_leaving_its_image_folder_is_refused(tmp_path: Path) -> None:
    from test_data_trees import write_msmt17

    root = write_msmt17(tmp_path / "MSMT17_V1")
    with (root / "list_query.txt").open("a") as f:
        f.write("../../../secret/0001_000_01_x_0001_0.jpg 1\n")
    with pytest.raises(DatasetError, match=r"list_query.txt line \d+: '\.\./\.\./\.\./secret"):
        load_dataset(f"msmt17:{root}")


def test_duplicate_list_lines_are_reported_and_handled_as_chosen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _luperson(tmp_path, ["imgs/0.jpg", "imgs/1.jpg", "imgs/0.jpg", "imgs/2.jpg",
                                "imgs/1.jpg"])
    dropped = load_dataset(f"luperson:{root}")
    assert [Path(r.path).name for r in dropped.train] == ["0.jpg", "1.jpg", "2.jpg"]
    assert "2 line(s) repeat an earlier one and were dropped" in caplog.text
    assert "line 3 repeats line 1 (imgs/0.jpg)" in caplog.text
    kept = load_dataset(f"luperson:{root}", duplicates="keep")
    assert len(kept.train) == 5
    result = runner.invoke(app, ["datasets", "check", f"luperson:{root}", "-o",
                                 "duplicates=error"])
    error_line(result, 1, str(root / "list.txt"), "line 3 repeats line 1", "duplicates=drop")
    check = runner.invoke(app, ["datasets", "check", f"luperson:{root}", "--strict"])
    assert check.exit_code == 1 and "duplicate list line" in check.output


def test_cfs_list_never_names_a_file_outside_the_source_root(tmp_path: Path) -> None:
    root = tmp_path / "src"
    inside = ImageRecord(str(root / "a" / "x.jpg"), -1, 0)
    assert relative_paths([inside], root) == ["a/x.jpg"]
    with pytest.raises(ReidError, match="not inside the source root"):
        relative_paths([inside, ImageRecord("/etc/passwd", -1, 0)], root)


# -- 10 and 18: banks -----------------------------------------------------------------------------
@pytest.fixture
def bank(tmp_path: Path) -> Path:
    path = tmp_path / "bank.h5"
    write_bank(path, synthetic_splits(SyntheticSpec(10, 40, 5, dim=8, num_cams=2, seed=0)))
    return path


def test_rerank_refuses_query_and_gallery_of_different_sizes(bank: Path, tmp_path: Path) -> None:
    with h5py.File(bank, "r+") as f:
        n = f["gallery/feats"].shape[0]
        del f["gallery/feats"]
        f["gallery/feats"] = np.ones((n, 12), np.float32)
    out = tmp_path / "d.h5"
    result = runner.invoke(app, ["rerank", str(bank), "-o", str(out)])
    error_line(result, 1, str(bank), "'query' has 8-dimensional", "'gallery' 12")
    assert not out.exists()
    error_line(runner.invoke(app, ["evaluate", str(bank)]), 1, "8-dimensional")


def test_float_pids_in_a_bank_are_refused(bank: Path) -> None:
    with h5py.File(bank, "r+") as f:
        pids = f["query/pids"][:]
        del f["query/pids"]
        f["query/pids"] = pids.astype(np.float64) + 0.5
    result = runner.invoke(app, ["evaluate", str(bank)])
    error_line(result, 1, str(bank), "'query' pids must be integers", "float64")


def test_k1_k2_without_rerank_warn(bank: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(bank), "--k1", "5", "--k2", "2"])
    assert result.exit_code == 0, result.output
    assert "--k1, --k2 only apply with --rerank" in " ".join(result.output.split())
    quiet = runner.invoke(app, ["evaluate", str(bank), "--rerank", "--k1", "5"])
    assert quiet.exit_code == 0 and "only apply" not in quiet.output


# -- 5: a dataset that cannot be evaluated --------------------------------------------------------
def _one_camera(market: Path, dest: Path) -> Path:
    root = _copy_market(market, dest)
    for split in ("query", "bounding_box_test"):
        for img in (root / split).iterdir():
            img.rename(img.with_name(img.name.replace("_c2s1", "_c1s1")))
    return root


def test_check_reports_a_dataset_that_cannot_be_evaluated(market: Path, tmp_path: Path) -> None:
    root = _one_camera(market, tmp_path / "m")
    result = runner.invoke(app, ["datasets", "check", f"market1501:{root}", "--no-verify"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "not evaluable [query]" in text and "from one camera" in text


def test_finetune_refuses_an_unevaluable_dataset_before_training(
    market: Path, tmp_path: Path
) -> None:
    root = _one_camera(market, tmp_path / "m")
    out = tmp_path / "run"
    with pytest.raises(DatasetError, match="cannot be evaluated.*--allow-no-eval"):
        finetune(tiny_config(root, out))
    assert not (out / "trainer.pt").exists() and not (out / "model.safetensors").exists()


def test_finetune_trains_without_evaluation_when_asked(
    market: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _one_camera(market, tmp_path / "m")
    result = finetune(tiny_config(root, tmp_path / "run", epochs=1, warmup_epochs=0,
                                  allow_no_eval=True))
    assert result.final == {} and len(result.metrics) == 1
    assert "training without evaluation" in caplog.text


def test_final_epoch_is_committed_before_evaluation(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise ReidError("evaluation exploded")

    monkeypatch.setattr(engine_module._Trainer, "_evaluate", broken)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match="after epoch 2 failed: evaluation exploded.*saved"):
        finetune(tiny_config(market, out))
    assert torch.load(out / "trainer.pt", weights_only=True)["epoch"] == 2
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    monkeypatch.undo()
    # Nothing is left to train: the resumed run does not repeat the epochs.
    assert finetune(resume_config(out, {"progress": False})).start_epoch == 3


# -- 17: --resume from another working directory -------------------------------------------------
def _stop_after_first(info) -> None:
    if info.epoch == 1:
        raise KeyboardInterrupt


def _interrupted_relative_run(market: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 2-epoch run started in `work` with relative data and run paths, stopped after
    epoch 1; returns its config.toml."""
    _copy_market(market, work / "data" / "m")
    monkeypatch.chdir(work)
    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_config(Path("data/m"), Path("runs/a")),
                 Hooks(on_epoch_end=_stop_after_first))
    return work / "runs/a/config.toml"


def test_resume_from_another_directory(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    config = _interrupted_relative_run(market, work, monkeypatch)
    assert f'data = "market1501:{work / "data" / "m"}"' in config.read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = finetune(resume_config(work / "runs/a", {"progress": False}))
    assert result.start_epoch == 2 and len(result.metrics) == 2


def test_old_run_with_a_relative_data_path_still_resumes(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    config = _interrupted_relative_run(market, work, monkeypatch)
    # What older versions wrote: the data path as typed.
    config.write_text(config.read_text().replace(str(work / "data" / "m"), "data/m"))
    result = finetune(resume_config(Path("runs/a"), {"progress": False}))
    assert result.start_epoch == 2


def test_pretrain_and_cfs_sources_take_the_duplicates_choice(tmp_path: Path) -> None:
    from reidcli.selection.pipeline import load_source
    from reidcli.ssl.config import PretrainConfig
    from reidcli.ssl.engine import load_paths

    root = _luperson(tmp_path, ["imgs/0.jpg", "imgs/1.jpg", "imgs/0.jpg"])
    spec = f"luperson:{root}"
    assert len(load_paths(PretrainConfig(data=spec))) == 2
    assert len(load_paths(PretrainConfig(data=spec, data_options=("duplicates=keep",)))) == 3
    with pytest.raises(DatasetError, match="line 3 repeats line 1"):
        load_paths(PretrainConfig(data=spec, data_options=("duplicates=error",)))
    assert len(load_source(spec).relative) == 2
    assert len(load_source(spec, options=("duplicates=keep",)).relative) == 3


def test_duplicates_choice_reaches_pretrain_and_cfs_filter_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reidcli.selection as selection
    import reidcli.ssl as ssl

    seen: dict[str, object] = {}
    # Each records what the CLI built and returns None (as a non-zero torchrun rank does).
    monkeypatch.setattr(ssl, "pretrain", lambda cfg: seen.update(pretrain=cfg))
    monkeypatch.setattr(selection, "cfs_filter", lambda opts: seen.update(cfs=opts))
    root = _luperson(tmp_path, ["imgs/0.jpg", "imgs/0.jpg"])
    runner.invoke(app, ["pretrain", "--data", f"luperson:{root}", "-O", "duplicates=keep",
                        "-o", str(tmp_path / "run")], catch_exceptions=False)
    assert seen["pretrain"].data_options == ("duplicates=keep",)
    runner.invoke(app, ["cfs-filter", "--source", f"luperson:{root}", "--source-option",
                        "duplicates=error", "--keep", "0.5", "-o", str(tmp_path / "l.txt")],
                  catch_exceptions=False)
    assert seen["cfs"].source_options == ("duplicates=error",)


def test_resume_elsewhere_finds_a_dataset_named_without_a_path(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from reidcli.ssl.config import PretrainConfig

    work = tmp_path / "work"
    _copy_market(market, work / "data" / "market1501")
    monkeypatch.chdir(work)
    monkeypatch.delenv("REID_DATA_ROOT", raising=False)
    cfg = dataclasses.replace(tiny_config(market, Path("runs/a")), data=("market1501",))
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, Hooks(on_epoch_end=_stop_after_first))
    # Found under ./data at start: config.toml keeps that root, absolute.
    assert f'data_root = "{work / "data"}"' in (work / "runs/a/config.toml").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = finetune(resume_config(work / "runs/a", {"progress": False}))
    assert result.start_epoch == 2
    # Pre-training saves it the same way; a dataset given with its path needs no root.
    assert PretrainConfig(data="luperson", output="r").resolved().data_root == str(
        elsewhere / "data")
    assert PretrainConfig(data=f"luperson:{work}", output="r").resolved().data_root is None
