"""The cfs-filter self-check: where the target's own images rank among the source scores."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from _cfs_data import write_proxy, write_source

from reidcli.selection import check as self_check
from reidcli.selection.pipeline import CfsOptions, cfs_filter
from reidcli.selection.scorefile import read_scores

N = 24
PICK = 8


def test_percentiles_count_lower_scores_and_half_the_ties() -> None:
    source = np.array([0.4, 0.1, 0.3, 0.2])
    got = self_check.percentiles(source, np.array([0.05, 0.3, 0.35, 0.5]))
    # 0.3: two lower (0.1, 0.2) plus half of one tie -> 2.5 of 4.
    np.testing.assert_allclose(got, [0.0, 62.5, 75.0, 100.0])


def test_verdict_is_inverted_below_the_source_median() -> None:
    source = np.arange(10, dtype=np.float64)  # median 4.5
    high = self_check.evaluate(source, np.array([7.0, 8.0, 9.5]), "t", "train", "do X")
    assert not high.inverted and high.advice == ""
    assert high.median_percentile == pytest.approx(85.0)  # 8.0: 8 lower + half a tie of 10
    assert high.above_source_median == 1.0 and high.source_median == 4.5
    low = self_check.evaluate(source, np.array([0.5, 1.5, 6.0]), "t", "train", "do X")
    assert low.inverted and low.median_percentile == pytest.approx(20.0)
    assert low.above_source_median == pytest.approx(1 / 3)
    assert low.warning().startswith("CFS self-check:") and low.warning().endswith("do X")
    assert "\n" not in low.warning()


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, tuple[Path, Path], Path]:
    """A source of N images, two random proxies and the scores file of the pair."""
    root = tmp_path_factory.mktemp("check")
    source = write_source(root / "lup", N)
    proxies = write_proxy(root / "s", seed=0), write_proxy(root / "t", seed=1)
    result = cfs_filter(_opts(source, proxies, root / "all.txt"))
    assert result is not None and result.check is None  # no target: nothing to check
    return source, proxies, result.scores_path


def _opts(source: Path, proxies: tuple[Path, Path], out: Path, **kw) -> CfsOptions:
    base = dict(source=f"luperson:{source}", output=out, keep=0.5, source_model=proxies[0],
                target_model=proxies[1], batch_size=4, workers=0, device="cpu",
                progress=False)
    return CfsOptions(**(base | kw))


@pytest.mark.parametrize(("end", "percentile", "inverted"), [
    # Ranks 16..23 of 24 (0-based, ascending): percentile 100 (2r + 1) / 48, median of the
    # eight = mean of ranks 19 and 20 -> 100 * 40 / 48.
    ("top", 100 * 40 / 48, False),
    ("bottom", 100 * 8 / 48, True),  # ranks 0..7: mean of ranks 3 and 4
])
def test_target_copies_of_the_best_or_worst_source_images(
        scored, tmp_path: Path, caplog, monkeypatch, end, percentile, inverted) -> None:
    source, proxies, scores_path = scored
    file = read_scores(scores_path)
    order = np.argsort(file.scores)
    chosen = order[-PICK:] if end == "top" else order[:PICK]
    # The target is byte-identical copies of the chosen source images: through the same
    # proxies they score exactly as those do, so their percentiles are known.
    target = tmp_path / "target"
    for i in chosen.tolist():
        dest = target / file.paths[i]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / file.paths[i], dest)
    opts = _opts(source, proxies, tmp_path / "sel.txt", scores=scores_path,
                 target=f"luperson:{target}")
    with caplog.at_level(logging.INFO, logger="reidcli"):
        result = cfs_filter(opts)
    assert result is not None and result.scoring.skipped
    check = result.check
    assert check is not None and check.images == PICK and check.split == "train"
    # Batches of other sizes may move a score by a float rounding: one rank at most.
    assert check.median_percentile == pytest.approx(percentile, abs=100 / N / 2)
    assert check.inverted is inverted
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if inverted:
        assert len(warnings) == 1 and "below the source median" in warnings[0]
        assert "--target-model" in warnings[0]  # given proxies: check them
    else:
        assert warnings == [] and check.advice == ""
    header = [ln for ln in (tmp_path / "sel.txt").read_text().splitlines()
              if ln.startswith("# check:")]
    assert len(header) == 1 and ("INVERTED" in header[0]) is inverted
    sidecar = json.loads(self_check.sidecar_path(scores_path).read_text())
    assert sidecar["check"]["median_percentile"] == check.median_percentile
    # The same models, source and sample: the stored check is reused, not rescored.
    monkeypatch.setattr("reidcli.selection.pipeline.score_paths",
                        lambda *a, **k: pytest.fail("the check was recomputed"))
    again = cfs_filter(opts)
    assert again is not None and again.check == check


def test_check_can_be_turned_off(scored, tmp_path: Path) -> None:
    source, proxies, scores_path = scored
    result = cfs_filter(_opts(source, proxies, tmp_path / "sel.txt", scores=scores_path,
                              target=f"luperson:{source}", check_sample=0))
    assert result is not None and result.check is None
    assert "# check: not run" in (tmp_path / "sel.txt").read_text()
