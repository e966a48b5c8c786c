"""Proxies trained inside `cfs-filter` with the pretrain / finetune library entry points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _cfs_data import write_source
from _training_data import write_market

from reidcli.data import load_dataset
from reidcli.errors import ReidError
from reidcli.models import read_config
from reidcli.runtime.files import file_sha256
from reidcli.selection.pipeline import CfsOptions, cfs_filter, load_source
from reidcli.selection.proxies import (
    SAMPLE_LIST,
    ProxySettings,
    crop_padding,
    has_labels,
    write_sample,
)
from reidcli.selection.scorefile import read_scores

N = 16


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    return write_source(root / "lup", N), write_market(root / "market", train_ids=4, test_ids=2)


def _settings(**kw) -> ProxySettings:
    base = dict(
        epochs=1, sample=8, backbone="vit-tiny-test", size=(64, 32), batch_size=4, workers=0,
        device="cpu", progress=False,
        pretrain_overrides=dict(local_crops=1, out_dim=32, head_hidden=32, head_bottleneck=16),
        finetune_overrides=dict(ids_per_batch=2, images_per_id=2, eval_batch_size=16,
                                lr=0.01),
    )
    return ProxySettings(**(base | kw))


def _opts(data: tuple[Path, Path], tmp: Path, **kw) -> CfsOptions:
    source, market = data
    base = dict(source=f"luperson:{source}", target=f"market1501:{market}", keep=0.5,
                output=tmp / "cfs.txt", proxy=_settings(), batch_size=8, workers=0,
                device="cpu", progress=False)
    return CfsOptions(**(base | kw))


def _sha(run: Path) -> str:
    return file_sha256(run / "model.safetensors")


def test_self_supervised_proxies_are_trained_then_reused(data, tmp_path: Path) -> None:
    ssl = _settings(target_supervised=False)
    result = cfs_filter(_opts(data, tmp_path, proxy=ssl))
    assert result is not None and result.kept == N // 2
    work = tmp_path / "cfs.work"
    s_run, t_run = work / "source_proxy", work / "target_proxy"
    assert result.source_model == s_run and result.target_model == t_run
    sample = [ln for ln in (work / SAMPLE_LIST).read_text().splitlines()
              if not ln.startswith("#")]
    relative = load_source(f"luperson:{data[0]}").relative
    assert len(sample) == 8 and set(sample) <= {relative[i] for i in range(N)}
    assert read_config(s_run).backbone == read_config(t_run).backbone == "vit-tiny-test"
    assert "init" in (t_run / "config.toml").read_text()  # theta_t starts from theta_s
    assert _sha(s_run) != _sha(t_run)
    scores = read_scores(result.scores_path).scores
    assert np.all(scores <= 1.0 + 1e-5) and np.ptp(scores) > 0
    shas = _sha(s_run), _sha(t_run)
    again = cfs_filter(_opts(data, tmp_path, keep=0.25, proxy=ssl))
    assert again is not None and again.scoring.skipped and again.kept == N // 4
    assert (_sha(s_run), _sha(t_run)) == shas  # finished proxies are not retrained
    assert again.check is not None and again.check.split == "train"  # the market's images
    with pytest.raises(ReidError, match="trained with other settings.*epochs"):
        cfs_filter(_opts(data, tmp_path, proxy=_settings(epochs=2, target_supervised=False)))
    # The default for a labelled target is the supervised proxy: not this one.
    with pytest.raises(ReidError, match="trained self-supervised, this run trains it "
                                        "supervised.*--target-self-supervised"):
        cfs_filter(_opts(data, tmp_path))


def test_labelled_targets_get_a_supervised_proxy_by_default(data) -> None:
    source, market = data
    assert has_labels(f"market1501:{market}", None)
    assert not has_labels(f"luperson:{source}", None)  # pid -1 throughout
    auto = ProxySettings()
    assert auto.target_supervised is None
    assert auto.supervised_target(f"market1501:{market}", None)
    assert not auto.supervised_target(f"luperson:{source}", None)
    forced = ProxySettings(target_supervised=False)
    assert not forced.supervised_target(f"market1501:{market}", None)
    with pytest.raises(ReidError, match="--target-supervised: the train split of luperson"):
        ProxySettings(target_supervised=True).supervised_target(f"luperson:{source}", None)


def test_supervised_target_proxy_fine_tunes_the_source_proxy(data, tmp_path: Path) -> None:
    first = cfs_filter(_opts(data, tmp_path / "a"))  # the default for a labelled target
    assert first is not None
    t_cfg = read_config(first.target_model)
    s_cfg = read_config(first.source_model)
    assert (first.target_model / "trainer.pt").is_file()
    assert (t_cfg.backbone, t_cfg.img_size, t_cfg.mean) == (s_cfg.backbone, s_cfg.img_size,
                                                            s_cfg.mean)
    assert t_cfg.num_classes == 4  # the target's training identities
    # TransReID's 10 px crop padding at 256x128 is 2-3 px at 64x32.
    assert "padding = 2\n" in (first.target_model / "config.toml").read_text()
    assert [crop_padding(s) for s in ((256, 128), (384, 128), (64, 32), (16, 8))] == [
        10, 10, 2, 1]
    # A given source proxy is used as it is; only the target proxy is trained.
    cfs_filter(_opts(data, tmp_path / "b", source_model=first.source_model,
                     proxy=_settings(target_supervised=True)))
    # Asking for a self-supervised proxy where a supervised one was trained is refused too.
    with pytest.raises(ReidError, match="trained supervised, this run trains it "
                                        "self-supervised.*--target-supervised"):
        cfs_filter(_opts(data, tmp_path / "b", source_model=first.source_model,
                         proxy=_settings(target_supervised=False)))
    assert not (tmp_path / "b" / "cfs.work" / "source_proxy").exists()
    assert (tmp_path / "b" / "cfs.work" / "target_proxy" / "model.json").is_file()


def test_proxy_settings_are_checked(data, tmp_path: Path) -> None:
    with pytest.raises(ReidError, match="--proxy-epochs"):
        cfs_filter(_opts(data, tmp_path, proxy=_settings(epochs=0)))
    with pytest.raises(ReidError, match="--target-model needs --source-model"):
        cfs_filter(_opts(data, tmp_path, target_model=tmp_path))


def test_sample_is_seeded_and_capped(data, tmp_path: Path) -> None:
    images = load_source(f"luperson:{data[0]}")
    write_sample(images, 5, 3, tmp_path / "a.txt")
    write_sample(images, 5, 3, tmp_path / "b.txt")
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
    assert write_sample(images, 100, 0, tmp_path / "c.txt") == N
    subset = load_dataset(f"luperson:{data[0]}", subset=str(tmp_path / "a.txt"))
    assert len(subset.train) == 5
