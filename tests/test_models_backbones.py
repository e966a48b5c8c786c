"""Backbones: parameter counts, grids, shapes, stems and configuration round trips."""

from __future__ import annotations

import pytest
import timm
import torch

from reidcli.models import BACKBONES, ModelConfig, build_model
from reidcli.models.config import IMAGENET_MEAN

TINY = "vit-tiny-test"


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# timm's own backbone parameter count (224x224, 197 position slots, no classifier head) and
# our backbone at 256x128 for strides 16 (16x8 grid, 129 slots) and 12 (21x10, 211 slots).
EXPECTED_COUNTS = {
    "vit-b": (85_798_656, 85_746_432, 85_809_408),
    "vit-s": (21_665_664, 21_639_552, 21_671_040),
    "vit-t": (5_524_416, 5_511_360, 5_527_104),
    "deit-s": (21_665_664, 21_639_552, 21_671_040),
    "deit-b": (85_798_656, 85_746_432, 85_809_408),
    "vit-small-demo": (2_855_232, 2_842_176, 2_857_920),
    "vit-tiny-test": (211_968, 207_616, 212_864),
}


def test_every_backbone_is_covered() -> None:
    # Patch-16 ViTs here; DINOv2, Swin and ResNet are in test_models_families.py.
    assert set(EXPECTED_COUNTS) == {n for n, s in BACKBONES.items() if s.family == "vit"}


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_parameter_counts_at_256x128(name: str) -> None:
    spec = BACKBONES[name]
    timm_count, s16, s12 = EXPECTED_COUNTS[name]
    # The meta device gives exact shapes without allocating or initialising ~86M weights.
    with torch.device("meta"):
        reference = timm.create_model(spec.timm_name, num_classes=0, **spec.overrides)
        assert n_params(reference) == timm_count
        dim = reference.embed_dim
        for stride, expected, slots in ((16, s16, 129), (12, s12, 211)):
            model = build_model(ModelConfig(backbone=name, stride=stride))
            assert model.backbone.pos_embed.shape == (1, slots, dim)
            # Only the position table changes size: kernel-16 convolution for every stride.
            assert n_params(model.backbone) == timm_count + (slots - 197) * dim == expected
            # + the BNNeck (weight, frozen bias); no classifier without identities.
            assert n_params(model) == expected + 2 * dim
            out = model.eval()(torch.empty(2, 3, 256, 128))
            assert out.shape == (2, dim)


def test_published_head_counts_match_timm() -> None:
    # ViT-B/16 86,567,656 and ViT-S/16 22,050,664 with a 1000-class head (literature values).
    assert EXPECTED_COUNTS["vit-b"][0] + 768 * 1000 + 1000 == 86_567_656
    assert EXPECTED_COUNTS["vit-s"][0] + 384 * 1000 + 1000 == 22_050_664


@pytest.mark.parametrize(("stride", "grid"), [(16, (16, 8)), (12, (21, 10)), (11, (22, 11))])
def test_overlapping_patch_embedding_grid(stride: int, grid: tuple[int, int]) -> None:
    cfg = ModelConfig(backbone=TINY, stride=stride)
    assert cfg.grid == grid
    model = build_model(cfg).eval()
    proj = model.backbone.patch_embed.proj
    assert proj.kernel_size == (16, 16) and proj.stride == (stride, stride)
    tokens = model.tokens(torch.randn(2, 3, 256, 128))
    assert tokens.shape == (2, 1 + grid[0] * grid[1], 64)
    assert model(torch.randn(2, 3, 256, 128)).shape == (2, 64)


def test_other_input_sizes() -> None:
    cfg = ModelConfig(backbone=TINY, img_size=(384, 128), stride=12)
    assert cfg.grid == (31, 10)
    model = build_model(cfg).eval()
    assert model(torch.randn(1, 3, 384, 128)).shape == (1, 64)
    with pytest.raises(AssertionError):
        model(torch.randn(1, 3, 256, 128))


@pytest.mark.parametrize(("stride", "grid"), [(16, (16, 8)), (12, (21, 10))])
def test_ics_stem(stride: int, grid: tuple[int, int]) -> None:
    cfg = ModelConfig(backbone=TINY, stem="ics", stride=stride)
    assert cfg.grid == grid
    model = build_model(cfg).eval()
    embed = model.backbone.patch_embed
    assert embed.grid_size == grid
    keys = set(model.state_dict())
    # TransReID-SSL's key layout: conv7x7, IBN(IN|BN), conv3x3, IBN, conv3x3, BN, projection.
    assert {"backbone.patch_embed.conv.0.weight", "backbone.patch_embed.conv.1.IN.weight"} <= keys
    assert {
        "backbone.patch_embed.conv.4.BN.running_mean",
        "backbone.patch_embed.conv.7.weight",
    } <= keys
    assert embed.conv[0].kernel_size == (7, 7) and embed.conv[0].stride == (2, 2)
    assert embed.conv[1].IN.num_features == 32 and embed.conv[1].BN.num_features == 32
    assert embed.proj.kernel_size == (8, 8) and embed.proj.stride == (stride // 2, stride // 2)
    x = torch.randn(2, 3, 256, 128)
    assert embed(x).shape == (2, grid[0] * grid[1], 64)
    assert model(x).shape == (2, 64)


def test_ics_rejects_odd_stride() -> None:
    with pytest.raises(ValueError, match="even stride"):
        ModelConfig(backbone=TINY, stem="ics", stride=11)


def test_config_round_trip_and_normalisation() -> None:
    cfg = ModelConfig(backbone="deit-s", stride=12, sie_camera=True, num_cams=6, jpm=True)
    assert cfg.mean == IMAGENET_MEAN
    assert ModelConfig(backbone="vit-b").mean == (0.5, 0.5, 0.5)
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(backbone="resnet152")
    with pytest.raises(ValueError, match="cannot be combined"):
        ModelConfig(backbone=TINY, jpm=True, part_tokens=3)


def test_drop_path_reaches_timm_blocks() -> None:
    model = build_model(ModelConfig(backbone=TINY, drop_path=0.3))
    assert model.backbone.blocks[-1].drop_path1.drop_prob == pytest.approx(0.3)
