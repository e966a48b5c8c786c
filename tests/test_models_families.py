"""DINOv2, SOLIDER Swin and ResNet backbones: shapes, counts, options, checkpoint layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from reidcli.errors import CheckpointError
from reidcli.models import BACKBONES, ModelConfig, build_model, load_pretrained
from reidcli.models.layers import layer_ids
from reidcli.models.resnet import set_last_stride_one
from reidcli.models.swin_weights import unfold_to_timm
from reidcli.training.optim import param_groups

TINY = ("dinov2-tiny-test", "dinov2-reg-tiny-test", "swin-tiny-test", "resnet-tiny-test")


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions and windows lose more to thread hand-offs than they gain (2 shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


# Backbone parameters at 256x128 and the feature width. DINOv2: timm's count at 518x518
# (37x37 grid + class slot) with the position table cut to 18x9 (+1); Swin: timm's count +
# the 3 semantic controllers; ResNet-50: timm's without the classifier.
FULL = {
    "dinov2-s": (21_592_704, 384),
    "dinov2-b": (85_652_736, 768),
    "dinov2-l": (303_131_648, 1024),
    "dinov2-g": (1_134_625_280, 1536),
    "dinov2-s-reg": (21_593_856, 384),
    "swin-t": (27_527_418, 768),
    "swin-s": (48_845_322, 768),
    "swin-b": (86_753_976, 1024),
    "resnet50": (23_508_032, 2048),
}


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_counts_and_shapes_on_meta(name: str) -> None:
    spec = BACKBONES[name]
    count, dim = FULL[name]
    with torch.device("meta"):
        model = build_model(ModelConfig(backbone=name)).eval()
        assert n_params(model.backbone) == count
        assert model(torch.empty(2, 3, 256, 128)).shape == (2, dim)
        reference = timm.create_model(spec.timm_name, num_classes=0)
    ref = n_params(reference)
    if spec.family == "dinov2":
        slots = 162 if spec.registers else 163
        full = 1369 if spec.registers else 1370
        assert count == ref + (slots - full) * dim
    elif spec.family == "swin":
        widths = [reference.layers[i].blocks[0].norm1.normalized_shape[0] for i in (1, 2, 3)]
        assert count == ref + sum(2 * 3 * w for w in widths)
    else:
        assert count == ref


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_at_256x128(name: str) -> None:
    cfg = ModelConfig(backbone=name, num_classes=5)
    model = build_model(cfg)
    x = torch.randn(2, 3, 256, 128)
    out = model.train()(x)
    assert out.logits[0].shape == (2, 5) and out.feats[0].shape == (2, model.feat_dim)
    assert model.eval()(x).shape == (2, model.feat_dim)
    if cfg.family == "dinov2":
        assert cfg.grid == (18, 9) and cfg.stride == 14
        assert model.tokens(x).shape[1] == model.num_prefix_tokens + 18 * 9


def test_resnet_last_stride_is_one() -> None:
    model = build_model(ModelConfig(backbone="resnet-tiny-test"))
    assert model.backbone.feature_map(torch.randn(1, 3, 256, 128)).shape[-2:] == (16, 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backbone": "swin-tiny-test", "jpm": True}, "ViT-family"),
        ({"backbone": "resnet-tiny-test", "sie_camera": True}, "ViT-family"),
        ({"backbone": "swin-tiny-test", "stride": 12}, "ViT-family"),
        ({"backbone": "resnet-tiny-test", "part_tokens": 3}, "ViT-family"),
        ({"backbone": "vit-tiny-test", "semantic_weight": 0.5}, "Swin backbones only"),
        ({"backbone": "swin-tiny-test", "semantic_weight": 1.5}, r"\[0, 1\]"),
        ({"backbone": "dinov2-reg-tiny-test", "part_tokens": 3}, "register tokens"),
        ({"backbone": "dinov2-tiny-test", "stem": "ics"}, "patch-16"),
        ({"backbone": "dinov2-tiny-test", "stride": 16}, "1..14"),
    ],
)
def test_token_only_options_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_dinov2_supports_jpm_and_sie() -> None:
    cfg = ModelConfig(backbone="dinov2-reg-tiny-test", jpm=True, sie_camera=True, num_cams=3)
    model = build_model(cfg).eval()
    feat = model(torch.randn(2, 3, 256, 128), torch.tensor([0, 2]))
    assert feat.shape == (2, 5 * 32)


# -- DINOv2 checkpoints -------------------------------------------------------------------
def _dinov2_reference(name: str) -> torch.nn.Module:
    spec = BACKBONES[name]
    ref = timm.create_model(spec.timm_name, num_classes=0, img_size=518, **spec.overrides)
    _randomise(ref)
    return ref.eval()


def _meta_layout(ref: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm -> Meta's names: chunked blocks, `register_tokens`, class slot in pos_embed, mask."""
    state = ref.state_dict()
    meta: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            meta["blocks.0." + key.removeprefix("blocks.")] = value
        elif key == "reg_token":
            meta["register_tokens"] = value
        else:
            meta[key] = value
    if "reg_token" in state:
        slot = torch.randn(1, 1, state["pos_embed"].shape[-1])
        meta["pos_embed"] = torch.cat([slot, state["pos_embed"]], dim=1)
        meta["cls_token"] = state["cls_token"] - slot
    meta["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    return meta


@pytest.mark.parametrize("name", ["dinov2-tiny-test", "dinov2-reg-tiny-test"])
def test_dinov2_meta_and_timm_layouts(name: str, tmp_path: Path) -> None:
    ref = _dinov2_reference(name)
    meta = _meta_layout(ref)
    assert meta["pos_embed"].shape[1] == 1370
    torch.save(meta, tmp_path / "meta.pth")
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    x = torch.randn(2, 3, 518, 518)
    # At the pre-training size nothing is resized: the function is timm's, exactly.
    native = build_model(ModelConfig(backbone=name, img_size=(518, 518))).eval()
    report = load_pretrained(native, tmp_path / "meta.pth")
    assert report.layout == "dinov2-meta" and "mask_token" in report.dropped
    with torch.no_grad():
        torch.testing.assert_close(native(x), ref.forward_features(x)[:, 0])
    # At 256x128 the 37x37 table is resized to 18x9, the same way for both layouts.
    small = [build_model(ModelConfig(backbone=name)).eval() for _ in range(2)]
    files = ("meta.pth", "timm.pth")
    reports = [load_pretrained(m, tmp_path / f) for m, f in zip(small, files, strict=True)]
    assert all(r.resized == ["backbone.pos_embed"] for r in reports)
    assert any("37x37 -> 18x9 (bicubic" in n for n in reports[0].notes)
    y = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(small[0](y), small[1](y))


def test_register_checkpoint_into_plain_dinov2_is_an_error(tmp_path: Path) -> None:
    torch.save(_meta_layout(_dinov2_reference("dinov2-reg-tiny-test")), tmp_path / "r.pth")
    with pytest.raises(CheckpointError, match="-reg DINOv2"):
        load_pretrained(build_model(ModelConfig(backbone="dinov2-tiny-test")), tmp_path / "r.pth")


# -- SOLIDER Swin checkpoints -------------------------------------------------------------
def _timm_to_unfold(value: torch.Tensor) -> torch.Tensor:
    """Inverse of `unfold_to_timm` (timm (dx, dy, c) -> Unfold (c, dy, dx))."""
    if value.ndim == 2:
        out, four_c = value.shape
        return value.reshape(out, 2, 2, four_c // 4).permute(0, 3, 2, 1).reshape(out, four_c)
    return value.reshape(2, 2, -1).permute(2, 1, 0).reshape(-1)


def _solider_checkpoint(model: torch.nn.Module) -> dict:
    """A SOLIDER teacher checkpoint (mmseg names) holding `model`'s backbone."""
    state = {k.removeprefix("backbone."): v for k, v in model.state_dict().items()
             if k.startswith("backbone.")}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("patch_embed.proj."):
            key = key.replace("patch_embed.proj.", "patch_embed.projection.")
        elif key.startswith("layers.") and ".downsample." in key:
            stage = int(key.split(".")[1])
            key = f"stages.{stage - 1}.downsample." + key.split(".downsample.")[1]
            value = _timm_to_unfold(value)
        elif key.startswith("layers."):
            key = "stages." + key.removeprefix("layers.")
            key = key.replace(".attn.", ".attn.w_msa.").replace(".mlp.fc1.", ".ffn.layers.0.0.")
            key = key.replace(".mlp.fc2.", ".ffn.layers.1.")
        elif key.startswith("norm."):
            key = "norm3." + key.removeprefix("norm.")
        out["backbone." + key] = value
    widths = [model.backbone.layers[i].blocks[0].norm1.normalized_shape[0] for i in range(4)]
    out["backbone.norm0.weight"] = torch.ones(widths[0])
    out["backbone.semantic_embed_w.3.weight"] = torch.zeros(widths[3], 2)
    out["backbone.semantic_embed_b.3.weight"] = torch.zeros(widths[3], 2)
    out["backbone.stages.0.blocks.0.attn.w_msa.relative_position_index"] = torch.zeros(49).long()
    return {"teacher": {**out, "head.mlp.0.weight": torch.zeros(4, 4)}, "epoch": 3}


def _solider_model(seed: int = 0, **kw) -> torch.nn.Module:
    model = build_model(ModelConfig(backbone="swin-tiny-test", **kw)).eval()
    _randomise(model.backbone, seed)
    return model


def test_solider_checkpoint_maps_exactly(tmp_path: Path) -> None:
    source = _solider_model()
    torch.save(_solider_checkpoint(source), tmp_path / "solider.pth")
    target = build_model(ModelConfig(backbone="swin-tiny-test")).eval()
    report = load_pretrained(target, tmp_path / "solider.pth")
    assert "solider-swin" in report.layout and not report.partial
    assert {"semantic_embed_w.3.weight", "norm0.weight"} <= set(report.dropped)
    assert any("never uses" in n for n in report.notes)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_solider_unknown_key_is_reported(tmp_path: Path) -> None:
    ckpt = _solider_checkpoint(_solider_model())
    ckpt["teacher"]["backbone.absolute_pos_embed"] = torch.zeros(1, 8, 16)
    torch.save(ckpt, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="absolute_pos_embed"):
        load_pretrained(build_model(ModelConfig(backbone="swin-tiny-test")), tmp_path / "odd.pth")


def test_semantic_weight_changes_the_features(tmp_path: Path) -> None:
    torch.save(_solider_checkpoint(_solider_model()), tmp_path / "solider.pth")
    x = torch.randn(2, 3, 256, 128)
    feats = []
    for lam in (0.2, 0.8):
        model = build_model(ModelConfig(backbone="swin-tiny-test", semantic_weight=lam)).eval()
        load_pretrained(model, tmp_path / "solider.pth")
        with torch.no_grad():
            feats.append(model(x))
    assert not torch.allclose(feats[0], feats[1], atol=1e-3)
    # A fresh controller is the identity: lambda has no effect until it is trained.
    fresh = [build_model(ModelConfig(backbone="swin-tiny-test", semantic_weight=lam)).eval()
             for lam in (0.0, 1.0)]
    fresh[1].load_state_dict(fresh[0].state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh[0](x), fresh[1](x))


def test_timm_swin_weights_and_window_resize(tmp_path: Path) -> None:
    spec = BACKBONES["swin-tiny-test"]
    ref = timm.create_model(spec.timm_name, num_classes=0, img_size=(256, 128),
                            always_partition=True, **spec.overrides)
    _randomise(ref)
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    model = build_model(ModelConfig(backbone="swin-tiny-test")).eval()
    report = load_pretrained(model, tmp_path / "timm.pth")
    assert report.layout == "timm-swin" and any("identity" in n for n in report.notes)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref.eval().forward_features(x).mean(dim=(1, 2)))
    other = build_model(ModelConfig(backbone="swin-tiny-test", window_size=4))
    report = load_pretrained(other, tmp_path / "timm.pth")
    tables = [k for k in report.resized if k.endswith("relative_position_bias_table")]
    assert len(tables) == 5  # one per block (depths 1-1-2-1)
    assert other.backbone.layers[0].blocks[0].attn.relative_position_bias_table.shape == (49, 1)


# -- ResNet checkpoints -------------------------------------------------------------------
def test_torchvision_style_resnet_weights(tmp_path: Path) -> None:
    spec = BACKBONES["resnet-tiny-test"]
    ref = timm.create_model(spec.timm_name, **spec.overrides)  # with its 1000-class fc
    _randomise(ref)
    torch.save(ref.state_dict(), tmp_path / "resnet.pth")
    model = build_model(ModelConfig(backbone="resnet-tiny-test")).eval()
    report = load_pretrained(model, tmp_path / "resnet.pth")
    assert sorted(report.dropped) == ["fc.bias", "fc.weight"] and not report.partial
    set_last_stride_one(ref)
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref.eval().forward_features(x).mean(dim=(2, 3)))


# -- layer-wise lr decay ------------------------------------------------------------------
@pytest.mark.parametrize(("name", "depth"), [("dinov2-tiny-test", 2), ("swin-tiny-test", 5),
                                             ("resnet-tiny-test", 4)])
def test_layer_ids_and_decayed_groups(name: str, depth: int) -> None:
    model = build_model(ModelConfig(backbone=name, num_classes=3))
    ids, layers = layer_ids(model)
    assert layers == depth and min(ids.values()) == 0 and max(ids.values()) == depth + 1
    assert ids["heads.0.classifier.weight"] == depth + 1
    groups = param_groups(model, lr=1.0, weight_decay=0.0, bias_lr_factor=1.0, lr_decay=0.5)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["layer0.weights"] == 0.5 ** (depth + 1)
    assert rates[f"layer{depth + 1}.weights"] == 1.0
    assert sum(len(g["params"]) for g in groups) == sum(
        p.requires_grad for p in model.parameters()
    )


def test_unfold_order_round_trip() -> None:
    w = torch.randn(5, 12)
    torch.testing.assert_close(unfold_to_timm(_timm_to_unfold(w)), w)
