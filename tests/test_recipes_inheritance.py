"""Recipe inheritance (`base = "other.toml"`), and the published recipes' values pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reidcli.errors import ReidError
from reidcli.ssl.config import SCHEMA as PRETRAIN
from reidcli.training.config import SCHEMA as FINETUNE
from reidcli.training.config import resolve_config
from reidcli.utils.recipes import RecipeSchema

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# The flattened values of every published recipe as they were before recipes could inherit
# (written from the stand-alone files): inheritance must not change a single value.
PINNED = json.loads((Path(__file__).parent / "data" / "recipes_resolved.json").read_text())


def _schema(name: str) -> RecipeSchema[Any]:
    return PRETRAIN if name.startswith("pretrain_") else FINETUNE


@pytest.mark.parametrize("name", sorted(PINNED))
def test_published_recipes_keep_their_values(name: str) -> None:
    schema = _schema(name)
    flat = schema.load_recipe(RECIPES / name)
    # Pinned before `data` became a list; a single string means a list of one.
    pinned = {k: [v] if k in schema.one_or_many else v for k, v in PINNED[name].items()}
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()} == pinned


def test_variants_state_only_what_differs() -> None:
    text = (RECIPES / "transreid_vitb_msmt17_s12.toml").read_text()
    settings = [ln for ln in text.splitlines() if "=" in ln and not ln.startswith("#")]
    assert settings == ['base = "transreid_vitb_market_s12.toml"', 'data = "msmt17"']


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_child_keys_replace_the_base_and_chains_apply_in_order(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", '[optim]\nlr = 0.1\nepochs = 7\n[model]\nbackbone = "vit-s"\n')
    _write(tmp_path, "b.toml", 'base = "a.toml"\n[optim]\nlr = 0.2\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    child = _write(sub, "c.toml", 'base = "../b.toml"\nepochs = 9\n')
    assert FINETUNE.load_recipe(child) == {"lr": 0.2, "epochs": 9, "backbone": "vit-s"}
    cfg = resolve_config(child, {"epochs": 3})
    assert (cfg.lr, cfg.epochs, cfg.backbone) == (0.2, 3, "vit-s")


def test_a_base_loop_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", 'base = "b.toml"\n')
    b = _write(tmp_path, "b.toml", 'base = "a.toml"\nlr = 0.1\n')
    with pytest.raises(ReidError, match=r"loops \(b.toml -> a.toml -> b.toml\)"):
        FINETUNE.load_recipe(b)


def test_missing_or_malformed_base_is_named(tmp_path: Path) -> None:
    child = _write(tmp_path, "c.toml", 'base = "nope.toml"\n')
    with pytest.raises(ReidError, match=r"c.toml: its base .*nope.toml does not exist"):
        FINETUNE.load_recipe(child)
    bad = _write(tmp_path, "d.toml", "base = 3\n")
    with pytest.raises(ReidError, match="`base` must be a file name"):
        FINETUNE.load_recipe(bad)
    typo = _write(tmp_path, "e.toml", 'base = "c2.toml"\n')
    _write(tmp_path, "c2.toml", "lrr = 0.1\n")
    with pytest.raises(ReidError, match=r"c2.toml: unknown setting `lrr`"):
        FINETUNE.load_recipe(typo)
