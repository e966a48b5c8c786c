"""End-to-end pre-training on a handful of tiny images: run dir, resume, export, layouts."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from _training_data import ABORT
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from reidcli.errors import TrainingError
from reidcli.models import ModelConfig, build_model, load_model, load_pretrained
from reidcli.ssl.config import PretrainConfig, resolve_config
from reidcli.ssl.engine import pretrain
from reidcli.ssl.network import SSLNetwork, crop_pos_embed, vit_tokens


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lup")
    rng = np.random.default_rng(0)
    names = []
    for i in range(8):
        arr = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / f"{i}.png")
        names.append(f"{i}.png")
    (root / "list.txt").write_text("\n".join(names) + "\n")
    return root


def tiny(images: Path, out: Path, **kw) -> PretrainConfig:
    base = dict(
        data=f"luperson:{images}", output=str(out), global_size=(64, 32), local_size=(32, 16),
        local_crops=2, part_crops=1, backbone="vit-tiny-test", out_dim=64, head_hidden=32,
        head_bottleneck=16, batch_size=4, epochs=2, warmup_epochs=1, workers=0, progress=False,
        warmup_patch_temp_epochs=1,
    )
    return PretrainConfig(**(base | kw))


def _trainer(run: Path) -> dict:
    return torch.load(run / "trainer.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def dino_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dino"
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        pretrain(tiny(images, out))
    return out


def test_step_seed_follows_the_run_seed(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reidcli.ssl.engine as engine

    calls: list[tuple[int, int, int]] = []
    real = engine.step_seed

    def record(seed: int, it: int, rank: int) -> int:
        calls.append((seed, it, rank))
        return real(seed, it, rank)

    monkeypatch.setattr(engine, "step_seed", record)
    with torch.random.fork_rng():
        pretrain(tiny(images, tmp_path / "run", seed=7, max_iters=2, epochs=1))
    assert calls == [(7, 0, 0), (7, 1, 0)]


def test_student_and_teacher_go_through_sync_batchnorm(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reidcli.runtime import distributed

    seen: list[list[str]] = []
    real = distributed.sync_batchnorm

    def record(model, ctx, device):
        seen.append([type(m).__name__ for m in model])
        return real(model, ctx, device)

    monkeypatch.setattr(distributed, "sync_batchnorm", record)
    with torch.random.fork_rng():
        pretrain(tiny(images, tmp_path / "run", stem="ics", max_iters=1, epochs=1))
    assert seen == [["SSLNetwork", "SSLNetwork"]]  # both, in one call (one warning on CPU)


def test_dino_run_directory(dino_run: Path) -> None:
    for name in ("config.toml", "trainer.pt", "model.safetensors", "model.json",
                 "metrics.jsonl", "train.log"):
        assert (dino_run / name).is_file(), name
    records = [json.loads(line) for line in (dino_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    for key in ("loss", "lr", "momentum", "teacher_temp", "images_per_s", "teacher_entropy",
                "centre_norm", "peak_memory_mb"):
        assert np.isfinite(records[-1][key]), key
    assert all(0 <= r["loader_wait_s"] <= r["epoch_time_s"] for r in records)
    state = _trainer(dino_run)
    assert state["iteration"] == 4
    assert {"student", "teacher", "objective", "optimizer", "scaler"} <= set(state)
    assert "loss.center" in state["objective"]
    # The config written is a recipe that resolves to the same settings.
    saved = resolve_config(dino_run / "config.toml", {"output": str(dino_run)})
    assert saved.method == "dino" and saved.out_dim == 64


def test_export_round_trip(dino_run: Path) -> None:
    teacher = {k.removeprefix("backbone."): v for k, v in _trainer(dino_run)["teacher"].items()
               if k.startswith("backbone.")}
    model, cfg = load_model(dino_run)
    assert cfg.backbone == "vit-tiny-test" and cfg.img_size == (64, 32)
    for k, v in teacher.items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    # What `reid finetune --pretrained RUN_DIR` does: a fresh model with a classifier.
    fresh = build_model(ModelConfig(backbone="vit-tiny-test", img_size=(64, 32), num_classes=5))
    report = load_pretrained(fresh, dino_run)
    assert not report.partial
    for k, v in teacher.items():
        assert torch.equal(fresh.backbone.state_dict()[k], v), k
    fresh.eval()
    assert fresh(torch.randn(2, 3, 64, 32)).shape == (2, 64)


def test_published_layouts_load(dino_run: Path, tmp_path: Path) -> None:
    state = _trainer(dino_run)
    teacher_bb = {k: v for k, v in state["teacher"].items() if k.startswith("backbone.")}
    # DINO: student under DDP's `module.`, teacher bare, plus optimiser/epoch/args.
    dino = {
        "student": {f"module.{k}": v for k, v in state["student"].items()},
        "teacher": state["teacher"],
        "optimizer": state["optimizer"],
        "epoch": 2,
        "args": argparse.Namespace(height=64, width=32, patch_size=16),
    }
    torch.save(dino, tmp_path / "checkpoint.pth")
    # iBOT: teacher file with a state_dict, student with the mask embedding.
    ibot = {"state_dict": state["teacher"] | {"masked_embed": torch.zeros(1, 64)}}
    torch.save(ibot, tmp_path / "ibot.pth")
    student_only = {"student": dino["student"]}
    torch.save(student_only, tmp_path / "student.pth")
    for name, source in (("checkpoint.pth", teacher_bb), ("ibot.pth", teacher_bb),
                         ("student.pth", state["student"]), ("trainer", teacher_bb)):
        path = dino_run / "trainer.pt" if name == "trainer" else tmp_path / name
        model = build_model(ModelConfig(backbone="vit-tiny-test", img_size=(64, 32)))
        report = load_pretrained(model, path)
        assert not report.partial, name
        for k, v in source.items():
            if k.startswith("backbone."):
                assert torch.equal(model.state_dict()[k], v), (name, k)


def test_resume_reproduces_uninterrupted_run(
    images: Path, dino_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "interrupted"
    pretrain(tiny(images, out, max_iters=3))  # stops in the middle of epoch 1
    assert _trainer(out)["iteration"] == 3
    with pytest.raises(TrainingError):
        pretrain(tiny(images, out))  # a fresh run must not overwrite it
    with pytest.raises(TrainingError, match="different settings"):
        pretrain(tiny(images, out, resume=True, lr=1e-3))
    pretrain(tiny(images, out, resume=True, workers=0))
    a, b = _trainer(dino_run), _trainer(out)
    assert b["iteration"] == 4
    for part in ("student", "teacher", "objective"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    wa, wb = load_file(dino_run / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_dino_mim_run(images: Path, tmp_path: Path) -> None:
    res = pretrain(tiny(images, tmp_path / "mim", method="dino-mim", epochs=1, mask_prob=1.0))
    record = res.metrics[-1]
    assert record["loss"] == pytest.approx(record["loss_cls"] + record["loss_mim"], rel=1e-5)
    assert record["loss_mim"] > 0 and record["patch_temp"] == pytest.approx(0.04)
    state = _trainer(tmp_path / "mim")
    assert "mask_token" in state["student"] and "patch.center" in state["objective"]
    # The mask token learned something; the teacher never uses its copy.
    assert state["student"]["mask_token"].abs().sum() > 0


def test_pass_run_and_export(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "pass"
    res = pretrain(tiny(images, out, method="pass", parts=3, part_crops=1, epochs=1))
    record = res.metrics[-1]
    terms = [record[k] for k in ("loss_cls", "loss_part0", "loss_part1", "loss_part2")]
    # Pair terms with 2 globals + 3 x 1 locals: [CLS] 2 x 5 - 2 = 8, each part 2 x 3 - 2 = 4.
    assert record["loss"] == pytest.approx((8 * terms[0] + 4 * sum(terms[1:])) / 20, rel=1e-5)
    model, cfg = load_model(out)
    assert cfg.part_tokens == 3
    assert model(torch.randn(1, 3, 64, 32)).shape == (1, 128)  # concat(CLS, mean(PARTs))


def test_pass_local_views_carry_only_their_part(images: Path) -> None:
    cfg = ModelConfig(backbone="vit-tiny-test", img_size=(64, 32), part_tokens=3, drop_path=0.0)
    net = SSLNetwork(build_model(cfg).backbone, 16, parts=3, part_crops=1, head_hidden=8,
                     head_bottleneck=8).eval()
    globals_ = [torch.randn(2, 3, 64, 32) for _ in range(2)]
    locals_ = [torch.randn(2, 3, 32, 16) for _ in range(3)]
    tokens = vit_tokens(net.backbone, locals_[0], part_index=torch.tensor([2, 2]))
    assert tokens.shape[1] == 2 + 2  # [CLS, PART_2] + 2x1 patch grid
    with torch.no_grad():
        out = net(globals_ + locals_)
        net.backbone.reg_token[0, 1].add_(1.0)  # perturb PART_1 only
        out2 = net(globals_ + locals_)
    assert [len(p) for p in out.parts] == [3, 3, 3]  # 2 globals + 1 local of that region
    assert torch.equal(out.parts[0][2], out2.parts[0][2])  # region-0 local: no PART_1 in it
    assert torch.equal(out.parts[2][2], out2.parts[2][2])
    assert not torch.equal(out.parts[1][2], out2.parts[1][2])
    assert not torch.equal(out.parts[0][0], out2.parts[0][0])  # globals carry every PART


def test_crop_position_table_follows_dino_interpolation() -> None:
    from timm.layers import resample_abs_pos_embed

    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 16 * 8, 24) * 0.02  # [CLS] slot + a 256x128 grid at patch 16
    ours = crop_pos_embed(pos, (8, 4), (16, 8), num_prefix=1)
    # DINO's interpolate_pos_encoding: the grid plus 0.1 over the old grid, as scale factors.
    table = pos[:, 1:].reshape(1, 16, 8, 24).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(table, scale_factor=(8.1 / 16, 4.1 / 8),
                                          mode="bicubic")
    ref = torch.cat([pos[:, :1], ref.permute(0, 2, 3, 1).reshape(1, 32, 24)], dim=1)
    assert torch.equal(ours, ref)
    # A size-based resample samples other positions.
    timm = resample_abs_pos_embed(pos, new_size=[8, 4], old_size=[16, 8], num_prefix_tokens=1,
                                  interpolation="bicubic", antialias=False)
    assert (timm - ours).abs().max() > 1e-3


def test_local_crops_use_the_dino_position_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import reidcli.ssl.network as network

    calls = []
    real = network.crop_pos_embed

    def record(pos, grid, old_grid, num_prefix):
        calls.append((grid, old_grid, num_prefix))
        return real(pos, grid, old_grid, num_prefix)

    monkeypatch.setattr(network, "crop_pos_embed", record)
    model = build_model(ModelConfig(backbone="vit-tiny-test", img_size=(64, 32), drop_path=0.0))
    vit_tokens(model.backbone, torch.randn(1, 3, 64, 32))
    assert calls == []  # the model's own size: the table as it is
    out = vit_tokens(model.backbone, torch.randn(1, 3, 32, 16))
    assert calls == [((2, 1), (4, 2), 1)] and out.shape[1] == 1 + 2


def test_non_finite_loss_aborts(images: Path, tmp_path: Path, monkeypatch) -> None:
    from reidcli.ssl import objective

    original = objective.Objective.forward

    def poisoned(self, *args, **kwargs):
        loss, terms, probs = original(self, *args, **kwargs)
        return loss * float("nan"), terms, probs

    monkeypatch.setattr(objective.Objective, "forward", poisoned)
    expected = r"non-finite loss \(nan; cls [0-9.]+\) at epoch 0, iteration 0; nothing of this run"
    with pytest.raises(TrainingError, match=expected) as err:
        pretrain(tiny(images, tmp_path / "nan", epochs=1))
    assert ABORT.fullmatch(str(err.value)), str(err.value)


def test_cli_init_from_run(images: Path, dino_run: Path, tmp_path: Path) -> None:
    from reidcli.cli.pretrain import pretrain as command

    app = typer.Typer()
    app.command()(command)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        "[input]\nglobal_size = [64, 32]\nlocal_size = [32, 16]\nlocal_crops = 2\n"
        "[model]\nbackbone = 'vit-tiny-test'\nout_dim = 64\nhead_hidden = 32\n"
        "head_bottleneck = 16\n[optim]\nwarmup_epochs = 0\n"
    )
    out = tmp_path / "cli"
    args = ["--data", f"luperson:{images / 'list.txt'}", "--recipe", str(recipe), "-o", str(out),
            "--epochs", "1", "--batch-size", "4", "--workers", "0", "--init", str(dino_run),
            "--keep", "0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = resolve_config(out / "config.toml", {"output": str(out)})
    assert saved.init == str(dino_run) and saved.keep == 0.5 and saved.epochs == 1
    assert _trainer(out)["iteration"] == 1  # 4 of 8 images kept: one batch
    result = CliRunner().invoke(app, ["-o", str(out), "--resume", "--workers", "0"])
    assert result.exit_code == 0, result.output


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    from reidcli.errors import ReidError

    with pytest.raises(ReidError, match="method"):
        PretrainConfig(data="x", output="y", method="mae").resolved()
    with pytest.raises(ReidError, match="unknown setting"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[optim]\nlearning_rate = 1.0\n")
        resolve_config(bad)
    cfg = PretrainConfig(data="x", output="y", method="pass").resolved()
    assert cfg.local_scale == (0.1, 0.8) and cfg.out_dim == 65536
    assert dataclasses.replace(cfg, method="dino-mim", out_dim=None).resolved().out_dim == 8192


def test_ics_stem_and_stride_run(images: Path, tmp_path: Path) -> None:
    # Local crops go through the conv stem at their own size; the position table is resampled.
    res = pretrain(tiny(images, tmp_path / "ics", stem="ics", epochs=1))
    assert np.isfinite(res.metrics[-1]["loss"])
    assert load_model(tmp_path / "ics")[1].stem == "ics"
    res = pretrain(tiny(images, tmp_path / "s12", stride=12, epochs=1, global_size=(64, 40),
                        local_size=(40, 28)))
    assert np.isfinite(res.metrics[-1]["loss"])


@pytest.mark.parametrize(
    "name", ["dino_vits", "dino_vitb", "pass_vits", "pass_vitb", "personvit_vits"]
)
def test_published_recipes_resolve(name: str) -> None:
    recipe = Path(__file__).parents[1] / "recipes" / f"pretrain_{name}.toml"
    cfg = resolve_config(recipe, {"output": "x", "data": "luperson:/data"}).resolved()
    assert cfg.data == "luperson:/data"  # the command line wins
    assert cfg.batch_size == 512 and cfg.epochs == 100 and cfg.lr == 5e-4
    expected = {"dino": "dino", "pass": "pass", "personvit": "dino-mim"}[name.split("_")[0]]
    assert cfg.method == expected
    assert cfg.backbone == ("vit-b" if name.endswith("vitb") else "vit-s")
