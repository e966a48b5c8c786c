"""`reid finetune --unsupervised` end to end on a tiny dataset: the run directory and its
per-epoch clustering record, labels never read, exact resume, unlabelled folders, errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_data import tiny_config, write_market
from safetensors.torch import load_file
from typer.testing import CliRunner

import reidcli.data
from reidcli.cli.app import app
from reidcli.data.records import ImageRecord
from reidcli.errors import ReidError
from reidcli.training import FinetuneConfig, Hooks, finetune, resume_config
from reidcli.training import cluster_contrast as trainer_mod

USL = dict(unsupervised=True, eps=0.6, min_samples=2, k1=6, k2=2, iters=3, neck_feat="after",
           lr=0.0035, warmup_epochs=0, eval_every=1)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_market(tmp_path_factory.mktemp("data") / "market", train_ids=8, test_ids=3,
                        cams=2, per_cam=3)


def usl_config(market: Path, out: Path, **kw) -> FinetuneConfig:
    return tiny_config(market, out, **{**USL, **kw})


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_records_clustering_every_epoch(market: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = finetune(usl_config(market, out))
    records = _metrics(out)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert r["steps"] == 3 and r["clusters"] >= 4
        assert 0.0 <= r["outlier_share"] < 1.0 and r["outliers"] >= 0
        assert r["cluster_time_s"] > 0 and r["extract_time_s"] > 0 and r["peak_rss_mb"] > 0
        assert -1.0 <= r["purity_ari"] <= 1.0 and 0.0 <= r["purity_nmi"] <= 1.0
        assert "mAP" in r and "id_loss" not in r and "triplet_loss" not in r
    # The model has no classifier and loads like any other run (for `reid extract`).
    from reidcli.models import load_model

    model, cfg = load_model(out)
    assert cfg.num_classes == 0 and cfg.neck_feat == "after"
    assert result.final["mAP"] == records[-1]["mAP"]
    log = (out / "train.log").read_text()
    assert "clusters" in log and "outliers" in log and "purity ARI" in log


def test_train_labels_are_never_read(market: Path, tmp_path: Path, monkeypatch) -> None:
    finetune(usl_config(market, tmp_path / "plain", epochs=2))
    real = reidcli.data.load_dataset
    rng = np.random.default_rng(0)

    def scrambled(spec, *args, **kwargs):
        dataset = real(spec, *args, **kwargs)
        train = dataset.splits["train"]
        pids = rng.permutation(len(train)) % 5
        dataset.splits["train"] = [ImageRecord(r.path, int(p), r.camid, r.viewid)
                                   for r, p in zip(train, pids, strict=True)]
        return dataset

    monkeypatch.setattr(reidcli.data, "load_dataset", scrambled)
    finetune(usl_config(market, tmp_path / "scrambled", epochs=2))
    _same_weights(tmp_path / "plain", tmp_path / "scrambled")
    a, b = _metrics(tmp_path / "plain"), _metrics(tmp_path / "scrambled")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["clusters"] for r in a] == [r["clusters"] for r in b]
    # The scramble did reach the data: only the purity report changes.
    assert a[0]["purity_ari"] != b[0]["purity_ari"]


def test_resume_reproduces_an_uninterrupted_run(market: Path, tmp_path: Path) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    finetune(usl_config(market, straight, epochs=3))

    def stop(info) -> None:
        if info.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(usl_config(market, interrupted, epochs=3), Hooks(on_epoch_end=stop))
    result = finetune(resume_config(interrupted, {"progress": False}))
    assert result.start_epoch == 2
    _same_weights(straight, interrupted)
    def measured(run: Path) -> list[dict]:  # without times and memory, which vary
        return [{k: v for k, v in r.items() if not k.endswith(("_s", "_mb"))}
                for r in _metrics(run)]

    assert measured(straight) == measured(interrupted)


def test_unlabelled_image_folder_with_evaluation_elsewhere(market: Path, tmp_path: Path) -> None:
    folder = tmp_path / "footage"
    shutil.copytree(market / "bounding_box_train", folder / "cam_all")
    out = tmp_path / "run"
    finetune(usl_config(market, out, data=f"luperson:{folder}",
                        eval_data=f"market1501:{market}"))
    records = _metrics(out)
    assert all("mAP" in r and r["clusters"] >= 4 for r in records)
    assert not any("purity_ari" in r for r in records)  # no labels to compare with


def test_camera_norm_clusters_camera_centred_features(market: Path, tmp_path: Path,
                                                     monkeypatch, caplog) -> None:
    seen: list[np.ndarray] = []
    real = trainer_mod.camera_centred

    def spy(features, cameras):
        seen.append(np.asarray(cameras))
        return real(features, cameras)

    monkeypatch.setattr(trainer_mod, "camera_centred", spy)
    finetune(usl_config(market, tmp_path / "run", epochs=1, camera_norm=True))
    train = reidcli.data.load_dataset(f"market1501:{market}").train
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [r.camid for r in train])
    assert 'camera_norm = true' in (tmp_path / "run" / "config.toml").read_text()
    # Without camera ids (one folder = one camera) it says that nothing is aligned.
    folder = tmp_path / "footage"
    shutil.copytree(market / "bounding_box_train", folder / "cam_all")
    with caplog.at_level("WARNING"):
        finetune(usl_config(market, tmp_path / "folder", epochs=1, camera_norm=True,
                            data=f"luperson:{folder}", eval_data=f"market1501:{market}"))
    assert "fewer than two known cameras" in caplog.text


def test_uda_starts_from_a_supervised_run(market: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    finetune(tiny_config(market, source, epochs=1))
    out = tmp_path / "adapted"
    finetune(usl_config(market, out, pretrained=str(source), epochs=1))
    log = (out / "train.log").read_text()
    assert f"pretrained weights from {source}" in log and "1 dropped" in log  # the classifier
    assert _metrics(out)[0]["clusters"] >= 4


def test_mixed_precision_keeps_the_memory_in_float32(market: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    seen = []
    real = trainer_mod.ClusterMemory.update

    def update(self, feats, targets) -> None:
        seen.append((feats.dtype, self.centroids.dtype))
        real(self, feats, targets)

    monkeypatch.setattr(trainer_mod.ClusterMemory, "update", update)
    result = finetune(usl_config(market, tmp_path / "run", amp="bf16", epochs=1))
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)
    assert np.isfinite(result.metrics[-1]["loss"])


def test_too_small_train_split_is_a_clear_error(market: Path, tmp_path: Path) -> None:
    with pytest.raises(ReidError, match=r"48 images, too few .*--min-samples 20"):
        finetune(usl_config(market, tmp_path / "run", min_samples=20))


def test_too_few_clusters_stop_after_the_last_good_epoch(market: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    real = trainer_mod.pseudo_labels
    calls = []

    def fewer_later(features, params, **kw):
        result = real(features, params, **kw)
        calls.append(1)
        if len(calls) == 2:  # epoch 2: everything an outlier
            result = replace(result, labels=np.full_like(result.labels, -1), num_clusters=0)
        return result

    monkeypatch.setattr(trainer_mod, "pseudo_labels", fewer_later)
    out = tmp_path / "run"
    with pytest.raises(ReidError, match=r"epoch 2: DBSCAN found 0 clusters .*raise --eps "
                                        r"\(now 0.6\) or lower --min-samples \(now 2\)"):
        finetune(usl_config(market, out, epochs=3))
    assert torch.load(out / "trainer.pt", weights_only=True)["epoch"] == 1
    assert [r["epoch"] for r in _metrics(out)] == [1]


def test_invalid_settings_are_named(market: Path, tmp_path: Path) -> None:
    with pytest.raises(ReidError, match=r"eps must be in \(0, 1\).*memory_update must be hard "
                                        r"or mean.*drop --jpm"):
        usl_config(market, tmp_path / "r", eps=1.5, memory_update="avg", jpm=True).validate()


@pytest.mark.slow
def test_cli_end_to_end(market: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", "--unsupervised", "--data", f"market1501:{market}", "-o", str(out),
            "--backbone", "vit-tiny-test", "--size", "64x32", "--epochs", "1", "--batch", "4x2",
            "--workers", "0", "--device", "cpu", "--eps", "0.6", "--min-samples", "2",
            "--k1", "6", "--k2", "2", "--iters", "2", "--memory-update", "mean",
            "--memory-momentum", "0.5", "--temperature", "0.1", "--warmup-epochs", "0",
            "--camera-norm"]
    result = CliRunner().invoke(app, ["-q", *args])
    assert result.exit_code == 0, result.output
    saved = (out / "config.toml").read_text()
    assert "[unsupervised]" in saved and 'memory_update = "mean"' in saved
    assert "camera_norm = true" in saved
    assert _metrics(out)[0]["steps"] == 2
    bad_args = [a if a != str(out) else str(tmp_path / "bad") for a in args]
    bad_args[bad_args.index("--min-samples") + 1] = "30"
    bad = CliRunner().invoke(app, ["-q", *bad_args])
    assert bad.exit_code == 1 and "--min-samples 30" in bad.output


RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("cluster_contrast_*.toml"))


def test_the_eight_published_settings_have_recipes() -> None:
    assert {p.stem for p in RECIPES} == {
        f"cluster_contrast_{s}_{m}_{d}" for s in ("usl", "uda") for m in ("vits", "vits_ics")
        for d in ("market", "msmt17")}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_cluster_contrast_recipes(recipe: Path) -> None:
    from reidcli.training.config import resolve_config
    from reidcli.training.schedule import build_scheduler

    cfg = resolve_config(recipe, {"output": "run"}).validate()
    assert cfg.unsupervised and (cfg.ids_per_batch, cfg.images_per_id, cfg.iters) == (32, 8, 200)
    assert cfg.eps == (0.7 if recipe.stem.endswith("msmt17") else 0.6)
    assert (cfg.min_samples, cfg.k1, cfg.k2, cfg.temperature, cfg.memory_momentum) == (
        4, 30, 6, 0.05, 0.2)
    assert cfg.stem == ("ics" if "_ics_" in recipe.stem else "patch")
    assert cfg.neck_feat == "after" and cfg.drop_path == 0.3 and cfg.epochs == 50
    # StepLR(20, 0.1) of the reference: 1-based epochs 1-20 at lr, 21-40 at lr/10, 41- at lr/100.
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.lr)
    sched = build_scheduler(opt, cfg.lr, cfg.epochs, cfg.warmup_epochs, kind=cfg.lr_schedule,
                            steps=cfg.lr_steps, gamma=cfg.lr_gamma)
    lrs = []
    for epoch in (1, 20, 21, 40, 41, 50):
        sched.step(epoch)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([3.5e-4, 3.5e-4, 3.5e-5, 3.5e-5, 3.5e-6, 3.5e-6])
    assert "Published (" in recipe.read_text()
