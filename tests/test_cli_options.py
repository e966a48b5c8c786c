"""Options declared once and shared by several commands (`cli/common.py` option groups)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from reidcli.cli import finetune as finetune_cli
from reidcli.cli import pretrain as pretrain_cli
from reidcli.cli.app import app
from reidcli.cli.common import default_help, option_group, typed
from reidcli.ssl.config import PretrainConfig
from reidcli.training.config import FinetuneConfig

runner = CliRunner()


def _defaults(config: type) -> dict[str, object]:
    return {f.name: f.default if f.default is not dataclasses.MISSING
            else f.default_factory() for f in dataclasses.fields(config)}  # type: ignore[misc]


@pytest.mark.parametrize(("module", "config"), [(pretrain_cli, PretrainConfig),
                                                (finetune_cli, FinetuneConfig)])
def test_quoted_defaults_are_the_config_dataclasses(module, config) -> None:
    real = _defaults(config)
    assert {k: real[k] for k in module.DEFAULTS} == module.DEFAULTS


def test_default_help_formats_sizes_and_switches() -> None:
    d = {"size": (256, 128), "sie": True, "seed": 0}
    assert default_help(d, "size", "Input size") == "Input size (default: 256x128)."
    assert default_help(d, "sie", "SIE") == "SIE (default: on)."
    assert default_help(d, "seed", "Seed") == "Seed (default: 0)."


@dataclass(frozen=True)
class _Pair:
    a: int
    b: str


_pair_options = option_group("pair", _Pair, {
    "a": (int, typer.Option(3, "--a", help="first")),
    "b": (str, typer.Option("x", "--b", help="second")),
})


def test_option_group_parses_documents_and_builds() -> None:
    seen: list[tuple[int, _Pair, list[str]]] = []
    toy = typer.Typer()

    @toy.command()
    @_pair_options
    def cmd(ctx: typer.Context, n: int = typer.Option(1, "--n"),
            pair: _Pair | None = None) -> None:
        assert pair is not None
        seen.append((n, pair, typed(ctx)))

    assert runner.invoke(toy, ["--b", "y", "--n", "2"]).exit_code == 0
    assert seen == [(2, _Pair(3, "y"), ["b", "n"])]  # in the order typed
    shown = runner.invoke(toy, ["--help"]).output
    assert "--a" in shown and "second" in shown and "--pair" not in shown
    assert runner.invoke(toy, ["--a", "notanint"]).exit_code == 2


@pytest.mark.parametrize(("command", "module", "seed"), [
    ("finetune", "reidcli.training", 1234), ("pretrain", "reidcli.ssl", 0)])
def test_run_options_reach_the_config(command, module, seed, monkeypatch, tmp_path: Path
                                      ) -> None:
    import importlib

    got = []
    monkeypatch.setattr(importlib.import_module(module), command, got.append)
    out = tmp_path / "run"
    r = runner.invoke(app, [command, "-o", str(out), "--workers", "0", "--device", "cpu",
                            "--drop-path", "0.25"])
    assert r.exit_code == 0, r.output
    cfg = got[0]
    assert (cfg.workers, cfg.device, cfg.seed, cfg.amp) == (0, "cpu", seed, "auto")
    assert (cfg.drop_path, cfg.stem) == (0.25, "patch")
    assert Path(cfg.output).name == "run"
    monkeypatch.setenv("COLUMNS", "250")  # one line per option
    shown = runner.invoke(app, [command, "--help"]).output
    assert f"(default: {seed})" in shown and "(default: patch)" in shown
    no_dir = runner.invoke(app, [command, "--seed", "1"])
    assert no_dir.exit_code == 2 and "run directory" in no_dir.output
    both = runner.invoke(app, [command, "-o", str(out), "--resume", "--recipe", "x.toml"])
    assert both.exit_code == 2 and "drop --recipe" in both.output


@pytest.mark.parametrize(("command", "config", "own"), [
    ("finetune", FinetuneConfig, {"batch", "soft_margin", "data_option"}),
    ("pretrain", PretrainConfig, {"size", "person_crops", "data_option"})])
def test_every_recipe_option_names_a_config_field(command, config, own) -> None:
    """`recipe_overrides` passes each typed option on by its parameter name."""
    import typer.main

    click_cmd = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    names = {p.name for p in click_cmd.params} - {"recipe", "output", "resume"} - own
    assert names <= {f.name for f in dataclasses.fields(config)}, names - {
        f.name for f in dataclasses.fields(config)}


def test_pretrain_options_convert_to_their_fields(monkeypatch, tmp_path: Path) -> None:
    got = []
    monkeypatch.setattr("reidcli.ssl.pretrain", got.append)
    r = runner.invoke(app, ["pretrain", "-o", str(tmp_path / "r"), "--size", "128x64",
                            "--person-crops", "--data-root", "d", "--lambda-mim", "0.5"])
    assert r.exit_code == 0, r.output
    cfg = got[0]
    assert (cfg.global_size, cfg.crop_aspect, cfg.data_root, cfg.lambda_mim) == (
        (128, 64), (0.4, 0.6), "d", 0.5)


def test_table_rows_derive_flag_type_and_metavar() -> None:
    from typing import Annotated

    from reidcli.cli.common import table_option, workers_option

    defaults = {"size": (256, 128), "lr": 0.1, "jpm": True, "epochs": 5}
    kind, info = table_option("P", "lr", "Rate", defaults, recipe=True)
    assert (kind, info.default, info.param_decls, info.help, info.rich_help_panel) == (
        float | None, None, ("--lr",), "Rate (default: 0.1).", "P")
    kind, info = table_option("P", "size", "Size", defaults, recipe=True)
    assert kind == str | None and info.help == "Size (default: 256x128)."
    _, info = table_option("P", "jpm", "JPM", defaults, recipe=True)
    assert info.param_decls == ("--jpm/--no-jpm",) and info.help == "JPM (default: on)."
    _, info = table_option("P", "data_option", (list[str], "--data-option -O K=V", "Opt"),
                           defaults, recipe=True)
    assert (info.param_decls, info.metavar) == (("--data-option", "-O"), "K=V")
    kind, info = table_option("P", "epochs", "Epochs", defaults, recipe=False)
    assert (kind, info.default, info.help) == (int, 5, "Epochs")  # a real default, typer shows it
    kind, info = table_option("P", "seed", (int, "Seed"), defaults, recipe=False)
    assert (kind, info.default) == (int | None, None)
    row = (Annotated[int, workers_option("R")], 4)
    assert table_option("P", "workers", row, defaults, recipe=False) == row
