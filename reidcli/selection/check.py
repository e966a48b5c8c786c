"""The stage's self-check: do the target's own images rank where the target-like ones should?

CFS keeps the source images whose features survive adapting theta_s to the target. Images
of the target itself are the most target-like images there are, so through the same two
proxies they should score high in the source's distribution. When they fall below the
source median, the ranking runs the wrong way: the kept half is then *less* target-like
than a random half. That happens, for example, with a self-supervised target proxy on a
short schedule, whose features move most on the very images it was trained on
(docs/benchmarks.md, "CFS filtering").

The check scores a seeded sample of target images with the proxies, places each score in
the source's score distribution (its percentile: the share of source images scoring lower,
ties counted half) and reports the median. It is recorded next to the scores file
(`scores.check.json` for `scores.h5`) and in the list's header, and reused while the models
and the sample are the same.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidcli.data.records import ReidDataset
from reidcli.utils.io import atomic_write_text

log = logging.getLogger(__name__)

CHECK_FORMAT = "reid-cfs-check"
INVERTED_BELOW = 50.0
"""Median percentile (of the target images among the source scores) under which the ranking
counts as inverted: the target images score below the source median."""


@dataclass
class SelfCheck:
    target: str
    split: str
    """Target split the sample was drawn from."""
    images: int
    """Target images scored."""
    median_percentile: float
    """Median over the target images of their percentile (0-100) among the source scores."""
    above_source_median: float
    """Share of the target images scoring above the source median."""
    source_median: float
    target_median: float
    inverted: bool
    advice: str = ""
    """What to change when inverted (empty otherwise)."""

    def summary(self) -> str:
        verdict = "INVERTED" if self.inverted else "ok"
        return (f"{verdict}: {self.images} {self.target} {self.split} images at median "
                f"percentile {self.median_percentile:.0f} of the source scores "
                f"(median {self.target_median:.4f} vs source {self.source_median:.4f}; "
                f"{self.above_source_median:.0%} above the source median)")

    def warning(self) -> str:
        """The one-line warning printed when the ranking looks inverted."""
        return (f"CFS self-check: the target's own images score below the source median "
                f"(median percentile {self.median_percentile:.0f}), so the kept images are "
                f"likely the least target-like: {self.advice}")


def percentiles(source_scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Percentile (0-100) of each value among the source scores: the share scoring lower,
    ties counted half."""
    ranked = np.sort(np.asarray(source_scores, dtype=np.float64))
    v = np.asarray(values, dtype=np.float64)
    below = np.searchsorted(ranked, v, side="left")
    upto = np.searchsorted(ranked, v, side="right")
    return 100.0 * (below + upto) / (2.0 * len(ranked))


def evaluate(source_scores: np.ndarray, target_scores: np.ndarray, target: str, split: str,
             advice: str) -> SelfCheck:
    """The verdict on target images' scores against the source's (both non-empty)."""
    pct = percentiles(source_scores, target_scores)
    source_median = float(np.median(source_scores))
    median_pct = float(np.median(pct))
    inverted = median_pct < INVERTED_BELOW
    return SelfCheck(
        target=target, split=split, images=len(target_scores), median_percentile=median_pct,
        above_source_median=float(np.mean(np.asarray(target_scores) > source_median)),
        source_median=source_median, target_median=float(np.median(target_scores)),
        inverted=inverted, advice=advice if inverted else "",
    )


def target_sample(dataset: ReidDataset, n: int, seed: int) -> tuple[str, list[str]]:
    """(split, paths): a seeded sample of up to `n` images of the target's train split.

    The train split is what the target proxy was adapted to, and it exists in every dataset
    (a labelled one and a plain image folder alike).
    """
    split = dataset.training_split()
    paths = [r.path for r in dataset.training_images()]
    if n < len(paths):
        keep = np.sort(np.random.default_rng(seed).choice(len(paths), size=n, replace=False))
        paths = [paths[i] for i in keep.tolist()]
    return split, paths


def sidecar_path(scores_path: Path) -> Path:
    """`scores.h5` -> `scores.check.json`."""
    return scores_path.with_name(f"{scores_path.stem}.check.json")


def read_check(path: Path, key: dict[str, Any]) -> SelfCheck | None:
    """The check stored at `path` when it was made with exactly `key` (else None)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if saved.get("format") != CHECK_FORMAT or saved.get("key") != key:
        return None
    try:
        return SelfCheck(**saved["check"])
    except (KeyError, TypeError):
        return None


def write_check(path: Path, check: SelfCheck, key: dict[str, Any]) -> None:
    record = {"format": CHECK_FORMAT, "version": 1, "key": key, "check": asdict(check)}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def check_key(provenance: dict[str, Any], target: str, sample: Sequence[str], seed: int
              ) -> dict[str, Any]:
    """What a stored check depends on: both models (by checksum), the source, the sample."""
    keys = ("source", "images", "source_model_sha256", "target_model_sha256", "amp")
    return {k: provenance.get(k) for k in keys} | {
        "target": target, "sample": len(sample), "seed": seed,
        "sample_first": sample[0] if sample else None,
        "sample_last": sample[-1] if sample else None,
    }
