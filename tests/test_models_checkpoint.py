"""save_model/load_model round trips and load_pretrained for every checkpoint layout.

Every checkpoint is built here, in the layout the real files use, from small timm ViTs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from reidcli.errors import CheckpointError
from reidcli.models import ModelConfig, build_model, load_model, load_pretrained, save_model
from reidcli.models.checkpoint import export_config
from reidcli.models.pretrained import infer_old_grid

TINY = "vit-tiny-test"
D = 64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def source_vit(img_size: tuple[int, int] = (224, 224), **kwargs) -> VisionTransformer:
    """A tiny ViT with the shapes of vit-tiny-test, as a pretraining codebase would save it."""
    kwargs.setdefault("num_classes", 0)
    vit = VisionTransformer(
        img_size=img_size, patch_size=16, embed_dim=D, depth=3, num_heads=2, **kwargs
    )
    with torch.no_grad():  # timm initialises these near zero; make them distinguishable.
        vit.cls_token.normal_()
        if vit.reg_token is not None:
            vit.reg_token.normal_()
    return vit


def bilinear(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """Independent statement of the resize rule: (1, h*w, D) grid, bilinear, no antialias."""
    grid = pos.reshape(1, *old, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=new, mode="bilinear", align_corners=False, antialias=False)
    return out.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], -1)


def images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 256, 128)


def assert_backbone_equals(model, state: dict[str, torch.Tensor], skip=("pos_embed",)) -> None:
    own = model.backbone.state_dict()
    for key, value in state.items():
        if key in skip or key.startswith("head"):
            continue
        torch.testing.assert_close(own[key], value, msg=key)


# --- save_model / load_model -------------------------------------------------------------


def test_round_trip_identical_outputs(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone=TINY, jpm=True, sie_camera=True, num_cams=4, num_classes=9)
    model = build_model(cfg)
    model.train()(images(4), torch.tensor([0, 1, 2, 3]))  # move the BN running statistics
    model.eval()
    save_model(tmp_path, model, cfg)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "model.json").read_text())["jpm"] is True
    assert not list(tmp_path.glob(".*tmp"))

    loaded, loaded_cfg = load_model(tmp_path)
    assert loaded_cfg == cfg and not loaded.training
    x, cams = images(), torch.tensor([1, 3])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, cams), model(x, cams), rtol=0, atol=0)

    bare, bare_cfg = load_model(tmp_path, num_classes=0)
    assert bare_cfg.num_classes == 0 and bare.heads[0].classifier is None
    with torch.no_grad():
        torch.testing.assert_close(bare(x, cams), model(x, cams), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="9-class"):
        load_model(tmp_path, num_classes=5)


def test_load_model_detects_mixed_up_files(tmp_path: Path) -> None:
    save_model(tmp_path, build_model(ModelConfig(backbone=TINY)))
    other = ModelConfig(backbone=TINY, stride=12).to_dict()
    (tmp_path / "model.json").write_text(json.dumps(other))
    with pytest.raises(CheckpointError, match="different saves"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="not a reidcli run directory"):
        load_model(tmp_path / "nowhere")


# --- load_pretrained: layouts ------------------------------------------------------------


def test_export_config_whichever_way_the_export_is_named(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32),
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    save_model(tmp_path / "run", build_model(cfg), cfg)
    assert export_config(tmp_path / "run") == cfg
    assert export_config(tmp_path / "run" / "model.safetensors") == cfg
    # A weights file on its own carries its config in the safetensors metadata.
    (tmp_path / "run" / "model.safetensors").rename(tmp_path / "moved.safetensors")
    assert export_config(tmp_path / "moved.safetensors") == cfg
    # Any other file of a run directory (a pre-training trainer.pt) reads the model.json.
    torch.save({}, tmp_path / "run" / "trainer.pt")
    assert export_config(tmp_path / "run" / "trainer.pt") == cfg
    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    assert export_config(tmp_path / "plain.safetensors") is None
    assert export_config("timm") is None


def test_timm_state_dict_from_imagenet_grid(tmp_path: Path) -> None:
    vit = source_vit(num_classes=10)
    state = vit.state_dict()
    torch.save(state, tmp_path / "vit.pth")
    model = build_model(ModelConfig(backbone=TINY, jpm=True))
    report = load_pretrained(model, tmp_path / "vit.pth")

    assert report.layout == "timm"
    assert report.resized == ["backbone.pos_embed"]
    assert sorted(report.dropped) == ["head.bias", "head.weight"]
    assert report.unexpected == [] and report.mismatched == []
    assert all(k.startswith(("heads.", "jpm.")) for k in report.missing)
    assert not report.partial
    assert_backbone_equals(model, state)
    pos = model.backbone.pos_embed
    torch.testing.assert_close(pos[:, :1], state["pos_embed"][:, :1])
    torch.testing.assert_close(pos[:, 1:], bilinear(state["pos_embed"][:, 1:], (14, 14), (16, 8)))
    # JPM's local branch is re-copied from the loaded last block.
    torch.testing.assert_close(model.jpm.block.attn.qkv.weight, state["blocks.2.attn.qkv.weight"])


def test_safetensors_and_deit_model_wrapper(tmp_path: Path) -> None:
    state = source_vit().state_dict()
    save_file(state, tmp_path / "vit.safetensors")
    torch.save({"model": state, "epoch": 300}, tmp_path / "deit.pth")
    for name in ("vit.safetensors", "deit.pth"):
        model = build_model(ModelConfig(backbone=TINY, stride=12))
        report = load_pretrained(model, tmp_path / name)
        assert not report.partial
        assert_backbone_equals(model, state)
        torch.testing.assert_close(
            model.backbone.pos_embed[:, 1:], bilinear(state["pos_embed"][:, 1:], (14, 14), (21, 10))
        )


def test_dino_teacher_from_luperson_grid(tmp_path: Path) -> None:
    teacher, student = source_vit((256, 128)), source_vit((256, 128))
    ckpt = {
        "teacher": {f"backbone.{k}": v for k, v in teacher.state_dict().items()}
        | {"head.mlp.0.weight": torch.randn(32, D), "head.last_layer.weight_g": torch.ones(8, 1)},
        "student": {f"module.backbone.{k}": v for k, v in student.state_dict().items()},
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 100,
        "args": argparse.Namespace(height=256, width=128, patch_size=16, arch="vit_small"),
    }
    torch.save(ckpt, tmp_path / "checkpoint.pth")
    model = build_model(ModelConfig(backbone=TINY, stride=12))
    report = load_pretrained(model, tmp_path / "checkpoint.pth")
    assert report.layout == "dino-teacher"
    assert sorted(report.dropped) == ["head.last_layer.weight_g", "head.mlp.0.weight"]
    assert_backbone_equals(model, teacher.state_dict())
    src_pos = teacher.pos_embed.detach()
    torch.testing.assert_close(
        model.backbone.pos_embed[:, 1:], bilinear(src_pos[:, 1:], (16, 8), (21, 10))
    )

    # A student-only file falls back to the student backbone, with a note.
    torch.save({"student": ckpt["student"]}, tmp_path / "student.pth")
    report = load_pretrained(model, tmp_path / "student.pth")
    assert report.layout == "dino-student" and any("student" in n for n in report.notes)
    assert_backbone_equals(model, student.state_dict())


def test_same_grid_is_not_resized(tmp_path: Path) -> None:
    teacher = source_vit((256, 128))
    torch.save({"teacher": {f"backbone.{k}": v for k, v in teacher.state_dict().items()}},
               tmp_path / "lup.pth")  # fmt: skip
    model = build_model(ModelConfig(backbone=TINY))
    report = load_pretrained(model, tmp_path / "lup.pth")
    assert report.resized == []
    torch.testing.assert_close(model.backbone.pos_embed, teacher.pos_embed.detach())


def test_ibot_state_dict_with_masked_embed(tmp_path: Path) -> None:
    vit = source_vit((256, 128))
    state = vit.state_dict() | {"masked_embed": torch.zeros(1, D)}
    torch.save({"state_dict": state}, tmp_path / "ibot_teacher.pth")
    model = build_model(ModelConfig(backbone=TINY))
    report = load_pretrained(model, tmp_path / "ibot_teacher.pth")
    assert report.layout == "ibot" and report.dropped == ["masked_embed"]
    assert not report.partial
    assert_backbone_equals(model, vit.state_dict(), skip=())


def pass_checkpoint(path: Path, parts: int = 3) -> dict[str, torch.Tensor]:
    """PASS's own naming: cls/part tokens with separate position vectors, 16x8 patch table."""
    backbone = source_vit((256, 128), class_token=True, no_embed_class=True).state_dict()
    backbone["cls_pos"] = torch.randn(1, 1, D)
    for k in range(1, parts + 1):
        backbone[f"part_token{k}"] = torch.randn(1, 1, D)
        backbone[f"part{k}_pos"] = torch.randn(1, 1, D)
    teacher = {f"backbone.{k}": v for k, v in backbone.items()}
    torch.save({"teacher": teacher, "epoch": 100}, path)
    return backbone


def test_pass_checkpoint(tmp_path: Path) -> None:
    src = pass_checkpoint(tmp_path / "pass.pth")
    assert src["pos_embed"].shape == (1, 128, D)
    model = build_model(ModelConfig(backbone=TINY, part_tokens=3))
    report = load_pretrained(model, tmp_path / "pass.pth")
    assert report.layout == "dino-teacher+pass" and not report.partial
    vit = model.backbone
    torch.testing.assert_close(vit.cls_token, src["cls_token"] + src["cls_pos"])
    for k in range(3):
        expected = src[f"part_token{k + 1}"] + src[f"part{k + 1}_pos"]
        torch.testing.assert_close(vit.reg_token[:, k : k + 1], expected)
    torch.testing.assert_close(vit.pos_embed, src["pos_embed"])
    assert model.eval()(images()).shape == (2, 2 * D)


def test_pass_checkpoint_needs_part_tokens(tmp_path: Path) -> None:
    src = pass_checkpoint(tmp_path / "pass.pth")
    model = build_model(ModelConfig(backbone=TINY))
    with pytest.raises(CheckpointError, match="part tokens"):
        load_pretrained(model, tmp_path / "pass.pth")
    report = load_pretrained(model, tmp_path / "pass.pth", allow_partial=True)
    assert report.unexpected == ["backbone.reg_token"]
    # No class slot in PASS's table: the model's CLS slot becomes zero (exact), patches kept.
    torch.testing.assert_close(model.backbone.pos_embed[:, 1:], src["pos_embed"])
    assert torch.count_nonzero(model.backbone.pos_embed[:, 0]) == 0


def test_class_slot_folded_into_cls_for_part_token_models(tmp_path: Path) -> None:
    vit = source_vit((256, 128))
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    model = build_model(ModelConfig(backbone=TINY, part_tokens=3))
    with pytest.raises(CheckpointError, match="reg_token"):
        load_pretrained(model, tmp_path / "vit.pth")
    load_pretrained(model, tmp_path / "vit.pth", allow_partial=True)
    pos = vit.pos_embed.detach()
    torch.testing.assert_close(model.backbone.cls_token, vit.cls_token.detach() + pos[:, :1])
    torch.testing.assert_close(model.backbone.pos_embed, pos[:, 1:])


def test_our_run_dir_with_jpm_and_sie(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone=TINY, jpm=True, sie_camera=True, num_cams=3, num_classes=5)
    trained = build_model(cfg)
    with torch.no_grad():
        trained.jpm.block.mlp.fc2.bias.add_(1.0)  # a trained local branch differs from blocks[-1]
    save_model(tmp_path / "run", trained)

    fresh = build_model(cfg)
    report = load_pretrained(fresh, tmp_path / "run")
    assert report.layout == "reidcli-run"
    assert report.missing == [] and report.unexpected == [] and report.dropped == []
    assert report.loaded == sorted(trained.state_dict())
    x, cams = images(), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x, cams), trained.eval()(x, cams))

    # Another dataset: the classifier and SIE table sizes differ -> fresh ones, with notes.
    other = build_model(
        ModelConfig(backbone=TINY, jpm=True, sie_camera=True, num_cams=6, num_classes=11)
    )
    report = load_pretrained(other, tmp_path / "run")
    assert "sie.embed" in report.dropped and "heads.0.classifier.weight" in report.dropped
    assert not report.partial
    torch.testing.assert_close(other.jpm.block.mlp.fc2.bias, trained.jpm.block.mlp.fc2.bias)


def test_pretraining_run_dir_at_another_stride(tmp_path: Path) -> None:
    save_model(tmp_path / "pre", build_model(ModelConfig(backbone=TINY, stride=12)))
    model = build_model(ModelConfig(backbone=TINY, stride=16))
    report = load_pretrained(model, tmp_path / "pre")
    assert report.resized == ["backbone.pos_embed"]
    assert any("21x10 -> 16x8" in n for n in report.notes)


def test_transreid_checkpoint(tmp_path: Path) -> None:
    cfg = ModelConfig(backbone=TINY, jpm=True, sie_camera=True, num_cams=2, num_classes=3)
    ours = build_model(cfg)
    state = ours.state_dict()
    renamed = {}
    for key, value in state.items():
        key = key.replace("backbone.", "base.").replace("sie.embed", "base.sie_embed")
        key = key.replace("jpm.block.", "b2.0.").replace("jpm.norm.", "b2.1.")
        for i in range(5):
            suffix = "" if i == 0 else f"_{i}"
            key = key.replace(f"heads.{i}.bn.", f"bottleneck{suffix}.")
            key = key.replace(f"heads.{i}.classifier.", f"classifier{suffix}.")
        renamed[key] = value
    # TransReID's global branch b1 is a copy of the last block + norm; base's own are dead.
    for key, value in state.items():
        if key.startswith("backbone.blocks.2."):
            renamed["b1.0." + key.removeprefix("backbone.blocks.2.")] = value
            renamed[key.replace("backbone.", "base.")] = torch.zeros_like(value)
        if key.startswith("backbone.norm."):
            renamed["b1.1." + key.removeprefix("backbone.norm.")] = value
    torch.save(renamed, tmp_path / "transformer_120.pth")
    fresh = build_model(cfg)
    report = load_pretrained(fresh, tmp_path / "transformer_120.pth")
    assert report.layout == "transreid" and report.missing == [] and report.unexpected == []
    for key, value in state.items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)


def google_npz(path: Path, grid: int = 14, depth: int = 3, heads: int = 2) -> dict[str, np.ndarray]:
    """The Google/AugReg .npz layout (JAX names and kernel layouts), random values."""
    rng = np.random.default_rng(0)
    hd = D // heads

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    w = {
        "embedding/kernel": r(16, 16, 3, D),
        "embedding/bias": r(D),
        "cls": r(1, 1, D),
        "Transformer/posembed_input/pos_embedding": r(1, 1 + grid * grid, D),
        "Transformer/encoder_norm/scale": r(D),
        "Transformer/encoder_norm/bias": r(D),
        "head/kernel": r(D, 10),
        "head/bias": r(10),
    }
    for i in range(depth):
        p = f"Transformer/encoderblock_{i}/"
        mha = p + "MultiHeadDotProductAttention_1/"
        for n in ("query", "key", "value"):
            w[f"{mha}{n}/kernel"] = r(D, heads, hd)
            w[f"{mha}{n}/bias"] = r(heads, hd)
        w[f"{mha}out/kernel"] = r(heads, hd, D)
        w[f"{mha}out/bias"] = r(D)
        for ln in ("LayerNorm_0", "LayerNorm_2"):
            w[f"{p}{ln}/scale"] = r(D)
            w[f"{p}{ln}/bias"] = r(D)
        w[f"{p}MlpBlock_3/Dense_0/kernel"] = r(D, 4 * D)
        w[f"{p}MlpBlock_3/Dense_0/bias"] = r(4 * D)
        w[f"{p}MlpBlock_3/Dense_1/kernel"] = r(4 * D, D)
        w[f"{p}MlpBlock_3/Dense_1/bias"] = r(D)
    np.savez(path, **w)
    return w


def test_google_npz(tmp_path: Path) -> None:
    w = google_npz(tmp_path / "Ti_16.npz")
    model = build_model(ModelConfig(backbone=TINY))
    report = load_pretrained(model, tmp_path / "Ti_16.npz")
    assert report.layout == "google-npz" and not report.partial
    vit = model.backbone
    torch.testing.assert_close(vit.cls_token, torch.from_numpy(w["cls"]))
    kernel = torch.from_numpy(w["embedding/kernel"]).permute(3, 2, 0, 1)
    torch.testing.assert_close(vit.patch_embed.proj.weight, kernel)
    pos = torch.from_numpy(w["Transformer/posembed_input/pos_embedding"])
    torch.testing.assert_close(vit.pos_embed[:, 1:], bilinear(pos[:, 1:], (14, 14), (16, 8)))


# --- load_pretrained: strictness ---------------------------------------------------------


def test_shape_mismatch_raises_and_leaves_model_untouched(tmp_path: Path) -> None:
    state = source_vit().state_dict()
    state["blocks.1.mlp.fc1.weight"] = torch.randn(128, D)
    state["blocks.1.mlp.fc1.bias"] = torch.randn(128)
    torch.save(state, tmp_path / "bad.pth")
    model = build_model(ModelConfig(backbone=TINY))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, tmp_path / "bad.pth")
    message = str(err.value)
    assert "backbone.blocks.1.mlp.fc1.weight: checkpoint (128, 64) vs model (256, 64)" in message
    assert "backbone.blocks.1.mlp.fc1.bias: checkpoint (128,) vs model (256,)" in message
    assert "allow_partial" in message
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])

    report = load_pretrained(model, tmp_path / "bad.pth", allow_partial=True)
    assert report.partial and len(report.mismatched) == 2
    torch.testing.assert_close(model.backbone.blocks[1].mlp.fc1.weight, before[
        "backbone.blocks.1.mlp.fc1.weight"])  # fmt: skip
    torch.testing.assert_close(
        model.backbone.blocks[0].mlp.fc1.weight, state["blocks.0.mlp.fc1.weight"]
    )


def test_missing_and_unexpected_blocks_raise(tmp_path: Path) -> None:
    deeper = VisionTransformer(img_size=224, embed_dim=D, depth=4, num_heads=2).state_dict()
    torch.save(deeper, tmp_path / "deeper.pth")
    model = build_model(ModelConfig(backbone=TINY))
    with pytest.raises(CheckpointError, match=r"does not have: backbone\.blocks\.3\."):
        load_pretrained(model, tmp_path / "deeper.pth")

    shallow = {k: v for k, v in source_vit().state_dict().items() if not k.startswith("blocks.2.")}
    torch.save(shallow, tmp_path / "shallow.pth")
    with pytest.raises(
        CheckpointError, match=r"missing from the checkpoint: backbone\.blocks\.2\."
    ):
        load_pretrained(model, tmp_path / "shallow.pth")
    report = load_pretrained(model, tmp_path / "shallow.pth", allow_partial=True)
    assert report.partial and "backbone.blocks.2.attn.qkv.weight" in report.missing


def test_unreadable_and_unsafe_files(tmp_path: Path) -> None:
    model = build_model(ModelConfig(backbone=TINY))
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(model, tmp_path / "missing.pth")
    torch.save({"weights": source_vit().state_dict(), "cfg": Path("x")}, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_pretrained(model, tmp_path / "unsafe.pth")


# --- old grid rule -----------------------------------------------------------------------


def test_infer_old_grid() -> None:
    assert infer_old_grid(196, (16, 8)) == (14, 14)
    assert infer_old_grid(576, (16, 8)) == (24, 24)
    assert infer_old_grid(128, (21, 10)) == (16, 8)
    assert infer_old_grid(210, (16, 8)) == (21, 10)
    assert infer_old_grid(242, (16, 8)) == (22, 11)
    assert infer_old_grid(128, (16, 8)) == (16, 8)
    assert infer_old_grid(150, (16, 8), hint=(15, 10)) == (15, 10)
    assert infer_old_grid(150, (16, 8)) is None


def test_uninferable_grid_needs_old_grid(tmp_path: Path) -> None:
    vit = source_vit((240, 160))  # 15x10 grid: neither square nor a known person layout
    torch.save(vit.state_dict(), tmp_path / "odd.pth")
    model = build_model(ModelConfig(backbone=TINY))
    with pytest.raises(CheckpointError, match="old_grid"):
        load_pretrained(model, tmp_path / "odd.pth")
    report = load_pretrained(model, tmp_path / "odd.pth", old_grid=(15, 10))
    assert report.resized == ["backbone.pos_embed"]
    torch.testing.assert_close(
        model.backbone.pos_embed[:, 1:], bilinear(vit.pos_embed.detach()[:, 1:], (15, 10), (16, 8))
    )


def test_timm_hub_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    with torch.device("meta"):
        model = build_model(ModelConfig(backbone="vit-t"))
    model = model.to_empty(device="cpu")
    tiny = build_model(ModelConfig(backbone=TINY))
    requested = {}

    def fake_create_model(name: str, pretrained: bool = False, **kwargs) -> VisionTransformer:
        requested.update(name=name, pretrained=pretrained)
        return source_vit()

    monkeypatch.setattr(timm, "create_model", fake_create_model)
    # Same layout as vit-t but narrower: the report must name the mismatches.
    with pytest.raises(CheckpointError, match=r"checkpoint \(1, 1, 64\) vs model \(1, 1, 192\)"):
        load_pretrained(model, "timm")
    assert requested == {"name": "vit_tiny_patch16_224", "pretrained": True}
    with pytest.raises(CheckpointError, match="standard backbones"):
        load_pretrained(tiny, "timm")


def test_report_string_and_wrapped_model(tmp_path: Path) -> None:
    torch.save(source_vit().state_dict(), tmp_path / "vit.pth")

    class Wrapper(torch.nn.Module):  # what DistributedDataParallel looks like from outside
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    model = build_model(ModelConfig(backbone=TINY))
    report = load_pretrained(Wrapper(model), tmp_path / "vit.pth")
    assert str(report).startswith(f"pretrained {tmp_path / 'vit.pth'} (timm): ")
    assert "\n" not in str(report) and "resized" in report.summary()
    save_model(tmp_path / "run", Wrapper(model))
    assert not any(k.startswith("module.") for k in load_model(tmp_path / "run")[0].state_dict())


def test_jpm_run_into_plain_model_drops_the_branches(tmp_path: Path) -> None:
    jpm_model = build_model(ModelConfig(backbone=TINY, jpm=True, sie_camera=True, num_cams=2))
    save_model(tmp_path / "run", jpm_model)
    plain = build_model(ModelConfig(backbone=TINY))
    report = load_pretrained(plain, tmp_path / "run")
    assert not report.partial
    assert "jpm.block.attn.qkv.weight" in report.dropped and "sie.embed" in report.dropped
    assert "heads.4.bn.weight" in report.dropped and "heads.0.bn.weight" in report.loaded
    torch.testing.assert_close(plain.backbone.norm.weight, jpm_model.backbone.norm.weight)


def test_saving_the_same_weights_twice_gives_identical_files(tmp_path) -> None:
    import hashlib

    torch.manual_seed(0)
    cfg = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32))
    model = build_model(cfg)
    digests = set()
    for i in range(4):
        save_model(tmp_path / str(i), model, cfg)
        digests.add(hashlib.sha256((tmp_path / str(i) / "model.safetensors").read_bytes())
                    .hexdigest())
    assert len(digests) == 1
