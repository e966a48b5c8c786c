"""`reid compare`: differing settings, seed groups (mean ± sample sd), wall time, JSON."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from _training_data import tiny_config, write_market
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.errors import ReidError
from reidcli.runs import compare_runs, mean_sd, summarise_run
from reidcli.runs.compare import comparison_json, wall_seconds
from reidcli.runs.report import comparison_tables, format_mean_sd
from reidcli.runtime.rundir import RunDir
from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.config import config_to_toml as pretrain_toml
from reidcli.training import finetune
from reidcli.training.config import FinetuneConfig
from reidcli.training.config import config_to_toml as finetune_toml


def _epoch(epoch: int, m_ap: float, **kw: float) -> dict:
    # The keys reidcli.training.engine writes for an evaluated epoch.
    return {"epoch": epoch, "loss": 2.0 / epoch, "id_loss": 1.5, "triplet_loss": 0.5,
            "acc": 0.5, "lr": 1e-3, "steps": 4, "images_per_s": 10.0 * epoch,
            "epoch_time_s": 1.0, "mAP": m_ap, "R1": m_ap + 0.1, "R5": 0.9, "R10": 1.0,
            "mINP": m_ap - 0.1, "eval_time_s": 0.1, **kw}


def _finetune_run(root: Path, final: float, best: float = 0.0, log: list[str] | None = None,
                  **cfg: object) -> Path:
    run = RunDir(root)
    root.mkdir(parents=True)
    values: dict = {"data": "market1501:/data/market", "output": str(root), **cfg}
    run.write_config(finetune_toml(FinetuneConfig(**values), header="reid finetune"))
    run.write_metrics([_epoch(1, best), _epoch(2, final)])
    run.log_path.write_text("".join(f"{line}\n" for line in log or []))
    return root


def test_differing_keys_and_seed_groups(tmp_path: Path) -> None:
    a = [_finetune_run(tmp_path / f"a{s}", final, lr=0.01, seed=s, workers=s)
         for s, final in ((0, 0.5), (1, 0.6), (2, 0.8))]
    b = _finetune_run(tmp_path / "b", 0.4, best=0.7, lr=0.02, seed=0)
    cmp = compare_runs([*a, b])
    # `workers` differs too, but cannot change a result.
    assert set(cmp.differing) == {"lr", "seed"}
    assert cmp.grouped and [len(g.runs) for g in cmp.groups] == [3, 1]
    group = cmp.groups[0]
    assert group.seeds == [0, 1, 2]
    mean, sd = group.stats["mAP"]
    assert mean == pytest.approx(0.6333333333) and sd == pytest.approx(0.152752523)  # sample sd
    assert group.stats["R1"][0] == pytest.approx(0.7333333333)
    # b's best epoch is the first (mAP 0.7), its final one the second.
    solo = cmp.groups[1].runs[0].values
    assert solo["mAP"] == 0.4 and solo["best mAP"] == 0.7 and solo["best epoch"] == 1
    assert solo["best R1"] == pytest.approx(0.8) and solo["epochs"] == 2
    assert solo["images/s"] == pytest.approx(15.0)


def test_mean_sd_is_the_sample_sd() -> None:
    assert mean_sd([1.0, 2.0, 6.0]) == (3.0, statistics.stdev([1.0, 2.0, 6.0]))
    assert mean_sd([0.25]) == (0.25, 0.0)
    assert format_mean_sd("mAP", 0.673, 0.033) == "67.3 ± 3.3"


def test_runs_not_differing_by_seed_only_stay_apart(tmp_path: Path) -> None:
    runs = [_finetune_run(tmp_path / "x", 0.5, seed=1, lr=0.01),
            _finetune_run(tmp_path / "y", 0.5, seed=2, lr=0.02)]
    cmp = compare_runs(runs)
    assert not cmp.grouped and set(cmp.differing) == {"lr", "seed"}


def test_wall_time_leaves_out_the_pause_before_a_resume(tmp_path: Path) -> None:
    log = ["2026-01-02 10:00:00 fine-tuning ...", "2026-01-02 10:00:30 epoch 1/2 loss 1",
           "  a continuation line", "2026-01-02 11:00:00 resumed run after epoch 1",
           "2026-01-02 11:00:10 epoch 2/2 loss 1"]
    run = _finetune_run(tmp_path / "r", 0.5, log=log)
    assert wall_seconds(RunDir(run)) == 40.0
    assert summarise_run(run).values["wall s"] == 40.0


def test_pretraining_runs_show_their_own_numbers(tmp_path: Path) -> None:
    root = tmp_path / "pt"
    root.mkdir()
    run = RunDir(root)
    cfg = PretrainConfig(data="luperson:/x", output=str(root)).resolved()
    run.write_config(pretrain_toml(cfg, header="reid pretrain"))
    # The keys reidcli.ssl.engine writes per epoch.
    run.write_metrics([{"epoch": e, "iteration": 5 * (e + 1), "complete": True, "lr": 1e-4,
                        "wd": 0.04, "momentum": 0.996, "teacher_temp": 0.04,
                        "images_per_s": 8.0, "epoch_time_s": 2.0, "peak_memory_mb": 10.0,
                        "loss": 6.0 - e, "loss_cls": 6.0 - e, "teacher_entropy": 0.9,
                        "teacher_prototypes_used": 30.0, "centre_norm": 0.01}
                       for e in range(3)])
    values = summarise_run(root).values
    assert "mAP" not in values
    assert values["loss"] == 4.0 and values["loss_cls"] == 4.0
    assert values["teacher_entropy"] == 0.9 and values["iterations"] == 15
    assert values["epochs"] == 3
    # A pre-training and a fine-tuning run side by side: each shows what it has.
    ft = _finetune_run(tmp_path / "ft", 0.5)
    cmp = compare_runs([root, ft])
    assert "method" in cmp.differing and len(cmp.differing) > 4
    # So many differing settings get a table of their own; missing values show as "-".
    settings, scores = comparison_tables(cmp)
    assert settings.row_count == len(cmp.differing) and scores.row_count == 2


def test_several_evaluation_datasets_get_their_own_columns(tmp_path: Path) -> None:
    run = _finetune_run(tmp_path / "r", 0.5)
    records = RunDir(run).read_metrics()
    for r in records:
        r["eval"] = {"viper": {"mAP": r["mAP"] / 2, "R1": 0.1, "mINP": 0.05}}
    RunDir(run).write_metrics(records)
    values = summarise_run(run).values
    assert values["mAP [market1501:/data/market]"] == 0.5
    assert values["mAP [viper]"] == 0.25 and values["best mAP [viper]"] == 0.25


def test_a_folder_without_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReidError, match="config.toml does not exist"):
        compare_runs([tmp_path])


def test_cli_on_real_runs(tmp_path: Path) -> None:
    market = write_market(tmp_path / "market", train_ids=8, test_ids=3)
    runs = []
    for seed in (1, 2):
        out = tmp_path / f"s{seed}"
        finetune(tiny_config(market, out, seed=seed, epochs=1))
        runs.append(str(out))
    result = CliRunner().invoke(app, ["compare", *runs, "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["differing_keys"] == ["seed"]
    records = [RunDir(r).read_metrics()[-1] for r in runs]
    (group,) = data["groups"]
    assert group["seeds"] == [1, 2] and group["runs"] == runs
    assert group["mean"]["mAP"] == pytest.approx(statistics.mean(r["mAP"] for r in records))
    assert group["sd"]["mAP"] == pytest.approx(statistics.stdev(r["mAP"] for r in records))
    assert data["runs"][0]["values"]["epochs"] == 1
    path = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["compare", *runs, "--no-group", "--json", str(path)])
    assert result.exit_code == 0 and "seed" in result.stdout
    assert json.loads(path.read_text()) == comparison_json(compare_runs(runs))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "not a training run" in " ".join(result.output.split())


def test_json_never_replaces_a_run_file_or_a_foreign_file(tmp_path: Path) -> None:
    a = _finetune_run(tmp_path / "a", 0.5, seed=0)
    b = _finetune_run(tmp_path / "b", 0.6, seed=1)
    runner = CliRunner()
    metrics = RunDir(a).metrics_path
    before = metrics.read_text()
    res = runner.invoke(app, ["compare", str(a), str(b), "--json", str(metrics)])
    assert res.exit_code == 1 and "input" in res.output and metrics.read_text() == before
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    res = runner.invoke(app, ["compare", str(a), str(b), "--json", str(notes)])
    assert res.exit_code == 1 and "--overwrite" in res.output and notes.read_text() == "{}"
    for extra in (["--overwrite"], []):  # then it is ours: replaced without being told
        res = runner.invoke(app, ["compare", str(a), str(b), "--json", str(notes), *extra])
        assert res.exit_code == 0, res.output
        assert json.loads(notes.read_text())["differing_keys"] == ["seed"]
