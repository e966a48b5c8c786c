"""Configuration: recipes, precedence of command-line options, TOML round trips, the CLI."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from reidcli.errors import ReidError
from reidcli.ssl.config import load_recipe as load_pretrain_recipe
from reidcli.training import config as config_mod
from reidcli.training.config import (
    FinetuneConfig,
    config_to_toml,
    load_recipe,
    resolve_config,
    resume_config,
)
from reidcli.utils.toml_writer import dumps

# Supervised fine-tuning recipes; `pretrain_*.toml` (`reid pretrain`) and
# `cluster_contrast_*.toml` (`reid finetune --unsupervised`) have their own tests.
RECIPES = sorted(p for p in (Path(__file__).parent.parent / "recipes").glob("*.toml")
                 if not p.name.startswith(("pretrain_", "cluster_contrast_")))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def test_recipe_sections_and_flat_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, 'lr = 1\n[model]\nbackbone = "vit-s"\nstride = 12\n'
                            '[input]\nsize = [384, 128]\n')
    values = load_recipe(path)
    assert values == {"lr": 1.0, "backbone": "vit-s", "stride": 12, "size": (384, 128)}
    assert isinstance(values["lr"], float)


def test_recipe_unknown_key_suggests(tmp_path: Path) -> None:
    with pytest.raises(ReidError, match="did you mean `warmup_epochs`"):
        load_recipe(_write(tmp_path, "[optim]\nwarmup_epoch = 3\n"))
    with pytest.raises(ReidError, match="not valid TOML"):
        load_recipe(_write(tmp_path, "lr = = 1\n"))
    with pytest.raises(ReidError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")


def test_recipe_arrays_have_the_fields_length(tmp_path: Path) -> None:
    # A short array would otherwise surface as an unpacking traceback deep in validation.
    with pytest.raises(ReidError, match="`size` takes 2 values, got \\[256\\]"):
        load_recipe(_write(tmp_path, "[input]\nsize = [256]\n"))
    with pytest.raises(ReidError, match="`mean` takes 3 values"):
        load_recipe(_write(tmp_path, "[input]\nmean = [0.5, 0.5]\n"))
    # Variable-length arrays (`tuple[int, ...]`) take any length.
    assert load_recipe(_write(tmp_path, "[optim]\nlr_steps = [10, 20, 30]\n")) == {
        "lr_steps": (10, 20, 30)}
    with pytest.raises(ReidError, match="`blur_sigma` takes 2 values"):
        load_pretrain_recipe(_write(tmp_path, "[input]\nblur_sigma = [0.5]\n"))


def test_precedence_defaults_recipe_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "[optim]\nlr = 0.0004\nwarmup_epochs = 20\n")
    cfg = resolve_config(path, {"lr": 0.001})
    assert cfg.lr == 0.001  # command line beats recipe
    assert cfg.warmup_epochs == 20  # recipe beats default
    assert cfg.epochs == 120  # default
    with pytest.raises(ReidError, match="unknown setting"):
        resolve_config(None, {"nope": 1})


def test_config_toml_round_trip(tmp_path: Path) -> None:
    cfg = FinetuneConfig(data="market1501:/d/m a\"x", output="o", size=(256, 128), lr=3e-4,
                         mean=(0.485, 0.456, 0.406), pretrained=None, soft_margin=False)
    text = config_to_toml(cfg, header="resolved\nconfig")
    assert text.startswith("# resolved\n# config\n")
    assert "output" not in tomllib.loads(text)["train"]
    back = resolve_config(_write(tmp_path, text), {"output": "o"})
    assert back == cfg


def test_toml_writer_values() -> None:
    text = dumps({"a": 1, "b": [1.5, 2e-4], "t": {"s": "q\"\\\n", "f": False, "n": None}})
    assert tomllib.loads(text) == {"a": 1, "b": [1.5, 2e-4], "t": {"s": "q\"\\\n", "f": False}}
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_validate_reports_every_problem() -> None:
    with pytest.raises(ReidError) as err:
        FinetuneConfig(data="", output="", amp="fp8", ids_per_batch=1, warmup_epochs=200).validate()
    text = str(err.value)
    for fragment in ("no dataset", "run directory", "amp", "ids_per_batch", "warmup_epochs"):
        assert fragment in text


def test_resume_config_applies_runtime_overrides(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(config_to_toml(FinetuneConfig(data="x", lr=0.5)))
    cfg = resume_config(tmp_path, {"workers": 1})
    assert cfg.lr == 0.5 and cfg.workers == 1 and cfg.resume and cfg.output == str(tmp_path)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_published_recipes_load(recipe: Path) -> None:
    cfg = resolve_config(recipe, {"output": "run"})
    cfg.validate()
    assert cfg.batch_size == 64
    # TransReID-lineage recipes (ViT, SOLIDER Swin); BoT and DINOv2: test_training_backbones.
    if not recipe.stem.startswith(("bot_", "dinov2_")):
        assert cfg.epochs == 120
        assert cfg.optimizer == "sgd" and cfg.wd == 1e-4 and cfg.soft_margin
        assert cfg.label_smoothing == 0.0
    header = recipe.read_text().splitlines()[0]
    assert header.startswith("#")


def test_recipes_exist() -> None:
    names = {p.stem for p in RECIPES}
    for expected in ("transreid_vitb_market_s16", "transreid_vitb_market_s12",
                     "transreid_vitb_msmt17_s12", "transreid_vitb_veri_s12",
                     "transreid_ssl_vits_ics_market", "pass_vitb_market"):
        assert expected in names


# -- CLI -------------------------------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    from reidcli.cli.finetune import finetune as command

    seen: list[FinetuneConfig] = []
    monkeypatch.setattr("reidcli.training.finetune", lambda cfg: seen.append(cfg))
    app = typer.Typer()
    app.command()(command)
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, list(args))
        return result, (seen[-1] if seen else None)

    return run


def test_cli_overrides_recipe(cli, tmp_path: Path) -> None:
    recipe = _write(tmp_path, "[optim]\nlr = 0.0004\nepochs = 60\n[model]\njpm = true\n")
    result, cfg = cli("--data", "market1501", "-o", str(tmp_path / "run"), "--recipe",
                      str(recipe), "--lr", "0.01", "--batch", "8x4", "--size", "128x64",
                      "--no-jpm", "--margin", "0.3", "--amp", "bf16")
    assert result.exit_code == 0, result.output
    assert cfg.lr == 0.01 and cfg.epochs == 60 and not cfg.jpm
    assert (cfg.ids_per_batch, cfg.images_per_id, cfg.size) == (8, 4, (128, 64))
    assert cfg.soft_margin is False and cfg.margin == 0.3 and cfg.amp == "bf16"
    assert cfg.output == str(tmp_path / "run")


def test_cli_soft_margin_beats_recipe_margin(cli, tmp_path: Path) -> None:
    recipe = _write(tmp_path, "[loss]\nsoft_margin = false\nmargin = 0.5\n")
    result, cfg = cli("--data", "m", "-o", "r", "--recipe", str(recipe), "--soft-margin")
    assert result.exit_code == 0, result.output
    assert cfg.soft_margin is True


def test_cli_jpm_exact_shift_reaches_the_model(cli, tmp_path: Path) -> None:
    result, cfg = cli("--data", "m", "-o", "r", "--jpm", "--jpm-exact-shift")
    assert result.exit_code == 0, result.output
    assert cfg.jpm_exact_shift is True
    result, cfg = cli("--data", "m", "-o", "r", "--jpm")
    assert cfg.jpm_exact_shift is False


def test_cli_dataset_options_are_saved_with_the_config(cli, tmp_path: Path) -> None:
    result, cfg = cli("--data", "folder:x", "-o", "r", "-O", "pattern=(?P<pid>\\d+)_c(?P<cam>\\d)",
                      "--data-option", "cam_base=0")
    assert result.exit_code == 0, result.output
    assert cfg.data_options == ("pattern=(?P<pid>\\d+)_c(?P<cam>\\d)", "cam_base=0")
    saved = tmp_path / "config.toml"
    saved.write_text(config_to_toml(cfg))
    assert resolve_config(saved).data_options == cfg.data_options


def test_cli_rejects_contradictions(cli) -> None:
    result, _ = cli("--data", "m", "-o", "r", "--margin", "0.3", "--soft-margin")
    assert result.exit_code == 2
    result, _ = cli("--data", "m", "-o", "r", "--batch", "16x4", "--ids-per-batch", "8")
    assert result.exit_code == 2
    result, _ = cli("--data", "m", "-o", "r", "--batch", "16by4")
    assert result.exit_code == 2
    result, _ = cli("--data", "m")
    assert result.exit_code == 2


def test_cli_resume_reads_saved_config(cli, tmp_path: Path) -> None:
    saved = FinetuneConfig(data="market1501", lr=0.123, epochs=7)
    (tmp_path / "config.toml").write_text(config_to_toml(saved))
    result, cfg = cli("-o", str(tmp_path), "--resume", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert cfg.resume and cfg.lr == 0.123 and cfg.epochs == 7 and cfg.workers == 2


def test_every_field_is_reachable_from_toml() -> None:
    # Every configuration field belongs to a table of config.toml except the run location.
    sections = {f.metadata["section"] for f in dataclasses.fields(FinetuneConfig)}
    assert sections == {"data", "input", "model", "loss", "optim", "train", "unsupervised",
                        "run"}
    assert config_mod.runtime_fields() >= {"workers", "device", "eval_every", "output", "resume"}
