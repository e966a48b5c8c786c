"""One model configuration: stage configs declare ModelConfig's fields (`model_setting`) and
`model_config_from` builds the ModelConfig by those declarations.

The reference builders below are the hand-written copies that `training/engine.py` and
`ssl/checkpoint.py` held before: every published recipe must give the same ModelConfig.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from reidcli.models import ModelConfig, model_config_from, stage_values
from reidcli.models.config import DATA_FIELDS, model_fields, model_setting
from reidcli.ssl.checkpoint import model_config
from reidcli.ssl.config import PretrainConfig
from reidcli.ssl.config import resolve_config as resolve_pretrain
from reidcli.training.config import FinetuneConfig
from reidcli.training.config import resolve_config as resolve_finetune

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
PRETRAIN_RECIPES = sorted(p.name for p in RECIPES.glob("pretrain_*.toml"))
FINETUNE_RECIPES = sorted(p.name for p in RECIPES.glob("*.toml") if p.name not in
                          PRETRAIN_RECIPES)
SOURCES = ({"name": "market1501", "pid_offset": 0, "cam_offset": 0},)


def old_finetune_copy(cfg: FinetuneConfig, num_cams: int, num_views: int, num_classes: int,
                      norm: tuple[Any, Any], sources: tuple[dict[str, Any], ...]) -> ModelConfig:
    return ModelConfig(
        backbone=cfg.backbone, img_size=cfg.size, stride=cfg.stride, stem=cfg.stem,
        sie_camera=cfg.sie, sie_view=cfg.sie_view, num_cams=max(1, num_cams),
        num_views=max(1, num_views), sie_coef=cfg.sie_coef, jpm=cfg.jpm,
        jpm_shift=cfg.jpm_shift, jpm_shuffle=cfg.jpm_shuffle, jpm_groups=cfg.jpm_groups,
        jpm_exact_shift=cfg.jpm_exact_shift, neck_feat=cfg.neck_feat,
        part_tokens=cfg.part_tokens, num_classes=num_classes, drop_path=cfg.drop_path,
        mean=cfg.mean or norm[0], std=cfg.std or norm[1],
        semantic_weight=cfg.semantic_weight, window_size=cfg.window_size, sources=sources,
    )


def old_pretrain_copy(cfg: PretrainConfig, drop_path: float | None = None) -> ModelConfig:
    return ModelConfig(
        backbone=cfg.backbone, img_size=tuple(cfg.global_size), stride=cfg.stride,
        stem=cfg.stem, part_tokens=cfg.parts if cfg.method == "pass" else 0, num_classes=0,
        drop_path=cfg.drop_path if drop_path is None else drop_path,
        mean=tuple(cfg.mean), std=tuple(cfg.std),
    )


def _new_finetune(cfg: FinetuneConfig, num_cams: int, num_views: int, num_classes: int,
                  norm: tuple[Any, Any], sources: tuple[dict[str, Any], ...]) -> ModelConfig:
    # As training/engine.py builds it.
    return model_config_from(cfg, num_cams=max(1, num_cams), num_views=max(1, num_views),
                             num_classes=num_classes, mean=cfg.mean or norm[0],
                             std=cfg.std or norm[1], sources=sources)


def test_the_published_recipes_are_all_covered() -> None:
    assert len(FINETUNE_RECIPES) >= 30 and len(PRETRAIN_RECIPES) >= 5
    assert "transreid_vitb_market_s12.toml" in FINETUNE_RECIPES


@pytest.mark.parametrize("name", FINETUNE_RECIPES)
def test_finetune_recipes_build_the_model_they_built_before(name: str) -> None:
    cfg = resolve_finetune(RECIPES / name, {})
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    for args in [(6, 1, 751, (None, None), ()), (15, 0, 1041, imagenet, SOURCES)]:
        assert _new_finetune(cfg, *args) == old_finetune_copy(cfg, *args)


@pytest.mark.parametrize("name", [*PRETRAIN_RECIPES, None])
def test_pretrain_configs_export_the_model_they_exported_before(name: str | None) -> None:
    cfg = resolve_pretrain(None if name is None else RECIPES / name, {})
    for method in ("dino", "dino-mim", "pass"):
        staged = dataclasses.replace(cfg, method=method)
        for drop_path in (None, 0.0):
            assert model_config(staged, drop_path) == old_pretrain_copy(staged, drop_path)


def test_every_model_setting_of_finetune_reaches_the_model() -> None:
    # Every field away from its default at once, then each against the old copy.
    cfg = FinetuneConfig(
        backbone="vit-tiny-test", size=(128, 64), stride=12, stem="ics", sie=True,
        sie_view=True, sie_coef=1.5, jpm=True, jpm_shift=3, jpm_shuffle=1, jpm_groups=2,
        jpm_exact_shift=True, neck_feat="after", part_tokens=0, drop_path=0.05,
        mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
    )
    args = (4, 2, 10, (None, None), SOURCES)
    built = _new_finetune(cfg, *args)
    assert built == old_finetune_copy(cfg, *args)
    assert (built.img_size, built.stride, built.sie_camera, built.jpm_groups) == \
        ((128, 64), 12, True, 2)
    swin = FinetuneConfig(backbone="swin-tiny-test", semantic_weight=0.5, window_size=4)
    built = _new_finetune(swin, *args)
    assert (built.semantic_weight, built.window_size) == (0.5, 4)
    assert built == old_finetune_copy(swin, *args)


def test_finetune_declares_every_model_option_with_the_model_default() -> None:
    declared = model_fields(FinetuneConfig)
    assert declared["size"] == "img_size" and declared["sie"] == "sie_camera"
    options = {f.name for f in dataclasses.fields(ModelConfig)} - set(DATA_FIELDS)
    assert set(declared.values()) == options
    defaults, model = FinetuneConfig(), ModelConfig.__dataclass_fields__
    for name, target in declared.items():
        assert getattr(defaults, name) == model[target].default, name


def test_pretrain_keeps_its_own_defaults_under_the_model_fields() -> None:
    assert model_fields(PretrainConfig) == {
        "global_size": "img_size", "mean": "mean", "std": "std", "backbone": "backbone",
        "stem": "stem", "stride": "stride", "drop_path": "drop_path"}
    cfg = PretrainConfig()
    assert (cfg.backbone, cfg.global_size, cfg.mean) == \
        ("vit-s", (256, 128), (0.485, 0.456, 0.406))


def test_stage_values_give_a_model_back_under_the_stage_keys() -> None:
    src = ModelConfig(backbone="vit-tiny-test", img_size=(128, 64), stride=12, part_tokens=3)
    values = stage_values(FinetuneConfig, src, ("backbone", "img_size", "stride", "mean"))
    assert values == {"backbone": "vit-tiny-test", "size": (128, 64), "stride": 12,
                      "mean": (0.5, 0.5, 0.5)}


def test_overrides_win_and_unknown_fields_are_refused() -> None:
    cfg = FinetuneConfig(backbone="vit-tiny-test", drop_path=0.3)
    assert model_config_from(cfg, drop_path=0.0, num_classes=5).drop_path == 0.0
    with pytest.raises(ValueError, match="no field 'sizes'"):
        model_setting("sizes")
