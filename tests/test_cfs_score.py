"""CFS scoring and selection with given proxies: known scores, list format, keep, resume."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from _cfs_data import SIZE, write_proxy, write_source
from PIL import Image

from reidcli.data import load_dataset
from reidcli.data.transforms import build_test_transform
from reidcli.errors import BankError, ReidError
from reidcli.inference.features import FeatureExtractor
from reidcli.models.checkpoint import load_model
from reidcli.selection.pipeline import CfsOptions, cfs_filter, load_source
from reidcli.selection.score import ScoreOptions, score_images
from reidcli.selection.scorefile import ScoreWriter, read_scores
from reidcli.selection.select import check_listable, count_to_keep, select
from reidcli.utils.partial_h5 import partial_path

N = 24


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_source(tmp_path_factory.mktemp("lup"), N)


@pytest.fixture(scope="module")
def proxies(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("proxies")
    return write_proxy(root / "s", seed=0), write_proxy(root / "t", seed=1)


def _score_opts(s: Path, t: Path, out: Path, **kw) -> ScoreOptions:
    base = dict(source_model=s, target_model=t, output=out, batch_size=4, workers=0,
                device="cpu", progress=False)
    return ScoreOptions(**(base | kw))


def _cfs_opts(source: Path, proxies: tuple[Path, Path], out: Path, **kw) -> CfsOptions:
    base = dict(source=f"luperson:{source}", output=out, keep=0.5, source_model=proxies[0],
                target_model=proxies[1], batch_size=4, workers=0, device="cpu", progress=False)
    return CfsOptions(**(base | kw))


def test_the_stage_hands_every_scoring_setting_to_the_scoring_pass(tmp_path: Path) -> None:
    opts = _cfs_opts(tmp_path, (tmp_path / "s", tmp_path / "t"), tmp_path / "list.txt",
                     batch_size=7, workers=3, amp="bf16", checkpoint_every=9, overwrite=True)
    scoring = ScoreOptions.of(opts, tmp_path / "s", tmp_path / "t", tmp_path / "scores.h5")
    assert scoring == ScoreOptions(
        source_model=tmp_path / "s", target_model=tmp_path / "t", output=tmp_path / "scores.h5",
        batch_size=7, workers=3, amp="bf16", device="cpu", checkpoint_every=9, overwrite=True,
        progress=False)


def _direct_cosines(source: Path, s: Path, t: Path) -> tuple[list[str], np.ndarray]:
    images = load_source(f"luperson:{source}")
    ms, cfg = load_model(s, num_classes=0)
    mt, _ = load_model(t, num_classes=0)
    tf = build_test_transform(cfg.img_size, cfg.mean, cfg.std)
    x = torch.stack([tf(Image.open(images.paths[i]).convert("RGB"))
                     for i in range(len(images))])
    with torch.no_grad():
        cos = F.cosine_similarity(ms(x), mt(x), dim=1)
    return [images.relative[i] for i in range(len(images))], cos.numpy()


def _list_body(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]


def test_identical_proxies_score_one(source: Path, proxies, tmp_path: Path) -> None:
    copy = write_proxy(tmp_path / "copy", seed=0)  # same weights, another run directory
    images = load_source(f"luperson:{source}")
    for target in (proxies[0], copy):
        out = tmp_path / f"{target.name}.h5"
        score_images(images, _score_opts(proxies[0], target, out))
        scores = read_scores(out).scores
        assert scores.shape == (N,)
        np.testing.assert_allclose(scores, 1.0, atol=1e-5)


def test_scores_equal_direct_cosine(source: Path, proxies, tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    score_images(load_source(f"luperson:{source}"), _score_opts(*proxies, out))
    paths, expected = _direct_cosines(source, *proxies)
    got = read_scores(out)
    assert got.paths == paths and paths[0] == "v00/img_000.png"
    np.testing.assert_allclose(got.scores, expected, atol=1e-5)
    assert got.attrs["format"] == "reid-cfs-scores" and got.attrs["images"] == N
    assert len(got.attrs["source_model_sha256"]) == 64
    assert np.ptp(got.scores) > 1e-3  # different models: the scores do rank the images


def test_list_is_best_first_with_header_and_loads_as_subset(source: Path, proxies,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "cfs.txt"
    result = cfs_filter(_cfs_opts(source, proxies, out, scores=tmp_path / "scores.h5"))
    assert result is not None and result.kept == N // 2 and result.total == N
    text = out.read_text().splitlines()
    header = [ln for ln in text if ln.startswith("#")]
    assert text[: len(header)] == header  # header first
    keys = {ln[2:].split(":", 1)[0] for ln in header[1:]}
    assert {"source", "target", "source model", "target model", "keep", "counts"} <= keys
    body = _list_body(out)
    paths, cos = _direct_cosines(source, *proxies)
    expected = [paths[i] for i in np.argsort(-cos, kind="stable")[: N // 2]]
    assert body == expected
    assert result.cutoff == pytest.approx(float(np.sort(cos)[::-1][N // 2 - 1]), abs=1e-5)
    assert result.mean_kept >= result.mean_all
    # What `reid pretrain --subset` sees: the kept images, best first.
    subset = load_dataset(f"luperson:{source}", subset=str(out))
    assert [r.path for r in subset.train] == [str(source / p) for p in expected]
    assert len(load_dataset(f"luperson:{source}", subset=str(out), keep=0.5).train) == N // 4


def test_keep_edge_cases(source: Path, proxies, tmp_path: Path) -> None:
    with pytest.raises(ReidError, match=r"--keep must be a fraction in \(0, 1\]"):
        cfs_filter(_cfs_opts(source, proxies, tmp_path / "a.txt", keep=0.0))
    with pytest.raises(ReidError, match="more than the 24 source images"):
        cfs_filter(_cfs_opts(source, proxies, tmp_path / "a.txt", keep=None, keep_count=25))
    with pytest.raises(ReidError, match="exactly one of"):
        cfs_filter(_cfs_opts(source, proxies, tmp_path / "a.txt", keep=None))
    with pytest.raises(ReidError, match="exactly one of"):
        cfs_filter(_cfs_opts(source, proxies, tmp_path / "a.txt", keep_count=3))
    # Bad selections are refused before any scoring work.
    assert not any(tmp_path.iterdir())
    everything = cfs_filter(_cfs_opts(source, proxies, tmp_path / "all.txt", keep=1.0))
    assert everything is not None and everything.kept == N
    relative = load_source(f"luperson:{source}").relative
    assert sorted(_list_body(tmp_path / "all.txt")) == sorted(
        relative[i] for i in range(len(relative)))
    exact = cfs_filter(_cfs_opts(source, proxies, tmp_path / "n.txt", keep=None, keep_count=N))
    assert exact is not None and exact.kept == N


def test_count_to_keep_rounds_like_pretrain() -> None:
    assert count_to_keep(4_180_243, keep=0.5) == 2_090_122
    assert count_to_keep(3, keep=0.01) == 1
    assert count_to_keep(10, keep_count=10) == 10
    with pytest.raises(ReidError, match="at least 1"):
        count_to_keep(10, keep_count=0)
    with pytest.raises(ReidError, match=r"\(0, 1\]"):
        count_to_keep(10, keep=1.5)


def test_ties_keep_source_order() -> None:
    chosen = select(np.array([0.5, 0.9, 0.5, 0.9, 0.1], np.float32), keep_count=4)
    assert chosen.order.tolist() == [1, 3, 0, 2] and chosen.cutoff == 0.5


def test_unlistable_paths_are_refused() -> None:
    check_listable(["a/b.jpg", "c.png"])
    for bad in ("with space.jpg", "#hash.jpg", "tab\there.jpg"):
        with pytest.raises(ReidError, match="cannot represent"):
            check_listable(["ok.jpg", bad])


def test_interrupted_scoring_resumes_without_rescoring(source: Path, proxies, tmp_path: Path,
                                                       monkeypatch) -> None:
    reference = tmp_path / "ref.h5"
    images = load_source(f"luperson:{source}")
    score_images(images, _score_opts(*proxies, reference))
    out = tmp_path / "s.h5"
    calls = {"n": 0}
    real_call = FeatureExtractor.__call__

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # Ctrl-C in the fourth batch (two forwards per batch)
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        score_images(images, _score_opts(*proxies, out))
    assert not out.exists() and partial_path(out).exists()
    calls["n"] = 100
    result = score_images(images, _score_opts(*proxies, out))
    batches = N // 4
    assert calls["n"] - 100 == 2 * (batches - 3)  # only the 3 unfinished batches are scored
    assert not partial_path(out).exists() and not result.skipped
    got, want = read_scores(out), read_scores(reference)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert got.paths == want.paths
    # Complete and of the same models: a re-run (e.g. with another --keep) scores nothing.
    calls["n"] = 0
    assert score_images(images, _score_opts(*proxies, out)).skipped and calls["n"] == 0
    monkeypatch.setattr(FeatureExtractor, "__call__", real_call)
    result = cfs_filter(_cfs_opts(source, proxies, tmp_path / "l.txt", scores=out,
                                  keep=None, keep_count=5))
    assert result is not None and result.scoring.skipped and len(_list_body(
        tmp_path / "l.txt")) == 5


def test_partial_of_other_models_is_discarded(source: Path, proxies, tmp_path: Path,
                                              monkeypatch) -> None:
    images = load_source(f"luperson:{source}")
    out = tmp_path / "s.h5"
    real_call = FeatureExtractor.__call__
    calls = {"n": 0}

    def stop(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "__call__", stop)
    with pytest.raises(KeyboardInterrupt):
        score_images(images, _score_opts(proxies[0], proxies[0], out))
    monkeypatch.setattr(FeatureExtractor, "__call__", real_call)
    score_images(images, _score_opts(*proxies, out))
    paths, expected = _direct_cosines(source, *proxies)
    np.testing.assert_allclose(read_scores(out).scores, expected, atol=1e-5)
    with pytest.raises(ReidError, match="--overwrite"):
        score_images(images, _score_opts(proxies[0], proxies[0], out))
    score_images(images, _score_opts(proxies[0], proxies[0], out, overwrite=True))
    np.testing.assert_allclose(read_scores(out).scores, 1.0, atol=1e-5)


def test_writer_resumes_from_last_checkpoint_after_a_hard_kill(tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    w = ScoreWriter(out, attrs={"source": "x"}, resume=True, keep_partial=True)
    w.append(np.array([0.1, 0.2]), ["a", "b"])
    w.checkpoint()
    w.append(np.array([0.3]), ["c"])
    del w  # a kill -9: the buffered row never reached the disk
    again = ScoreWriter(out, attrs={"source": "x"}, resume=True)
    assert again.rows_done == 2
    again.append(np.array([0.4]), ["d"])
    again.finish()
    got = read_scores(out)
    assert got.paths == ["a", "b", "d"] and got.scores.tolist() == pytest.approx([0.1, 0.2, 0.4])
    other = ScoreWriter(tmp_path / "o.h5", attrs={"source": "x"}, keep_partial=True)
    other.append(np.array([0.5]), ["e"])
    other.checkpoint()
    other.abort()
    assert ScoreWriter(tmp_path / "o.h5", attrs={"source": "y"}, resume=True).rows_done == 0


def test_bad_scores_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BankError, match="not found"):
        read_scores(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "bank.h5", "w") as f:
        f.attrs["format"] = "reid-feature-bank"
    with pytest.raises(BankError, match="expected 'reid-cfs-scores'"):
        read_scores(tmp_path / "bank.h5")


def test_proxies_of_different_feature_sizes_are_refused(source: Path, proxies,
                                                        tmp_path: Path) -> None:
    pass_like = write_proxy(tmp_path / "parts", part_tokens=2)
    with pytest.raises(ReidError, match="different sizes"):
        score_images(load_source(f"luperson:{source}"),
                     _score_opts(proxies[0], pass_like, tmp_path / "s.h5"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, opts: CfsOptions) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = cfs_filter(opts)
    assert (result is None) == (rank != 0)


@pytest.mark.slow
def test_two_rank_gloo_scoring_equals_single_process(source: Path, proxies,
                                                     tmp_path: Path) -> None:
    single, merged = tmp_path / "single", tmp_path / "merged"
    cfs_filter(_cfs_opts(source, proxies, single / "cfs.txt", batch_size=5))
    opts = _cfs_opts(source, proxies, merged / "cfs.txt", batch_size=5)
    mp.spawn(_rank_main, args=(2, _free_port(), opts), nprocs=2)
    assert sorted(p.name for p in (merged / "cfs.work").iterdir()) == ["scores.h5"]
    got, want = read_scores(merged / "cfs.work/scores.h5"), read_scores(
        single / "cfs.work/scores.h5")
    assert got.paths == want.paths
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6)
    assert (merged / "cfs.txt").read_text().replace(str(merged), "") == (
        single / "cfs.txt").read_text().replace(str(single), "")


def test_each_proxy_sees_its_own_normalisation(source: Path, proxies, tmp_path: Path) -> None:
    imagenet = write_proxy(tmp_path / "in", seed=1, mean=(0.485, 0.456, 0.406),
                           std=(0.229, 0.224, 0.225))
    out = tmp_path / "s.h5"
    images = load_source(f"luperson:{source}")
    score_images(images, _score_opts(proxies[0], imagenet, out))
    ms, s_cfg = load_model(proxies[0], num_classes=0)
    mt, t_cfg = load_model(imagenet, num_classes=0)
    assert s_cfg.mean != t_cfg.mean
    pil = [Image.open(images.paths[i]).convert("RGB") for i in range(len(images))]
    with torch.no_grad():
        fs = ms(torch.stack([build_test_transform(SIZE, s_cfg.mean, s_cfg.std)(p) for p in pil]))
        ft = mt(torch.stack([build_test_transform(SIZE, t_cfg.mean, t_cfg.std)(p) for p in pil]))
    np.testing.assert_allclose(read_scores(out).scores,
                               F.cosine_similarity(fs, ft, dim=1).numpy(), atol=1e-5)
