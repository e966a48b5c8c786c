"""Evaluation against the per-query full-argsort reference, and the protocol's edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_retrieval_reference import dense_sqdist, ref_evaluate, reid_labels

from reidcli.errors import BankError
from reidcli.retrieval.evaluate import (
    EvalOptions,
    evaluate_blocks,
    evaluate_features,
)
from reidcli.retrieval.pipeline import Retrieval


def _blocks(dist: np.ndarray, rows: int):
    for a in range(0, dist.shape[0], rows):
        yield a, torch.as_tensor(dist[a:a + rows].copy())


def _check(result, ref, max_rank: int = 50) -> None:
    assert result.num_valid_queries == ref["num_valid"]
    assert result.mAP == pytest.approx(ref["mAP"], abs=1e-12)
    assert result.mINP == pytest.approx(ref["mINP"], abs=1e-12)
    assert np.allclose(result.cmc, ref["cmc"][:max_rank], atol=1e-12)
    assert result.rank1 == pytest.approx(ref["cmc"][0])


@pytest.mark.parametrize("rows", [1, 7, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_distances(rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    qp, qc, gp, gc = reid_labels(rng, 40, 300, ids=25, cams=4)
    dist = rng.random((40, 300)).astype(np.float32)
    ref = ref_evaluate(dist, qp, qc, gp, gc)
    got = evaluate_blocks(_blocks(dist, rows), qp, qc, gp, gc)
    _check(got, ref)
    assert got.num_queries == 40


def test_ties_are_broken_by_gallery_order() -> None:
    # Distances from a handful of levels: every row is full of exact ties, including ties
    # between positives and negatives.
    rng = np.random.default_rng(5)
    qp, qc, gp, gc = reid_labels(rng, 30, 200, ids=10, cams=3)
    dist = rng.integers(0, 6, (30, 200)).astype(np.float32) / 4
    ref = ref_evaluate(dist, qp, qc, gp, gc)
    _check(evaluate_blocks(_blocks(dist, 8), qp, qc, gp, gc), ref)


def test_easy_and_hard_queries_in_one_block() -> None:
    # Half of the queries have all positives near the top (few candidates), the others
    # positives spread over the whole row (almost every item is a candidate).
    rng = np.random.default_rng(9)
    qp, qc, gp, gc = reid_labels(rng, 20, 400, ids=8, cams=3)
    dist = rng.random((20, 400)).astype(np.float32)
    for i in range(0, 20, 2):
        dist[i, gp == qp[i]] *= 0.01
    ref = ref_evaluate(dist, qp, qc, gp, gc)
    _check(evaluate_blocks(_blocks(dist, 20), qp, qc, gp, gc), ref)


def test_features_match_reference_exactly_for_integer_features() -> None:
    # Integer features make every float32 distance exact, so the blockwise and dense
    # distance matrices are identical and so must the metrics be.
    rng = np.random.default_rng(2)
    qp, qc, gp, gc = reid_labels(rng, 50, 400, ids=20, cams=5)
    qf = rng.integers(-3, 4, (50, 6)).astype(np.float32)
    gf = rng.integers(-3, 4, (400, 6)).astype(np.float32)
    ref = ref_evaluate(dense_sqdist(qf, gf), qp, qc, gp, gc, max_rank=20)
    got = evaluate_features(qf, gf, qp, qc, gp, gc, Retrieval("euclidean"),
                            options=EvalOptions(max_rank=20, budget=4096))
    _check(got, ref, max_rank=20)
    assert len(got.cmc) == 20


def test_cosine_metric_and_float16_features() -> None:
    rng = np.random.default_rng(3)
    qp, qc, gp, gc = reid_labels(rng, 30, 250, ids=12, cams=3)
    qf = rng.standard_normal((30, 16)).astype(np.float16)
    gf = rng.standard_normal((250, 16)).astype(np.float16)
    ref = ref_evaluate(dense_sqdist(qf.astype(np.float32), gf.astype(np.float32), "cosine"),
                       qp, qc, gp, gc)
    got = evaluate_features(qf, gf, qp, qc, gp, gc, Retrieval("cosine"))
    _check(got, ref)
    assert got.metric == "cosine" and got.rerank is None


def test_query_without_positive_is_skipped_and_counted() -> None:
    qp = np.array([1, 2, 3])
    qc = np.array([1, 1, 1])
    gp = np.array([1, 2, 3, -1])
    gc = np.array([2, 1, 1, 2])  # pid 2 and 3 only seen by the query's own camera
    dist = np.array([[0.1, 0.2, 0.3, 0.0]] * 3, dtype=np.float32)
    r = evaluate_blocks(_blocks(dist, 2), qp, qc, gp, gc)
    assert (r.num_queries, r.num_valid_queries) == (3, 1)
    assert r.mAP == 1.0 and r.rank1 == 1.0


def test_all_queries_invalid_is_a_clear_error() -> None:
    dist = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(BankError, match="none of the 2 queries has a positive"):
        evaluate_blocks(_blocks(dist, 2), np.array([7, 8]), np.array([1, 1]),
                        np.array([1, 2, -1]), np.array([1, 2, 3]))


def test_single_query_and_single_gallery_item() -> None:
    r = evaluate_features(np.ones((1, 4)), np.ones((1, 4)), np.array([1]), np.array([1]),
                          np.array([1]), np.array([2]))
    assert (r.mAP, r.mINP, r.rank1, r.num_valid_queries) == (1.0, 1.0, 1.0, 1)
    assert r.cmc == [1.0] * 50
    rng = np.random.default_rng(4)
    qp, qc, gp, gc = reid_labels(rng, 1, 50, ids=3, cams=2)
    gp[0], gc[0] = qp[0], qc[0] % 2 + 1  # make sure the one query has a positive
    qf, gf = rng.standard_normal((1, 8)), rng.standard_normal((50, 8))
    ref = ref_evaluate(dense_sqdist(qf, gf, "cosine"), qp, qc, gp, gc)
    _check(evaluate_features(qf, gf, qp, qc, gp, gc), ref)


def test_duplicate_gallery_features_rank_in_gallery_order() -> None:
    # Query pid 1; gallery: a negative and a positive with identical features. The negative
    # comes first in the gallery, so it takes rank 1 and the positive rank 2.
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    r = evaluate_features(np.array([[1.0, 0.0]]), g, np.array([1]), np.array([1]),
                          np.array([5, 1, 1]), np.array([2, 2, 3]))
    assert r.rank1 == 0.0 and r.cmc[1] == 1.0
    assert r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_per_camera_and_bootstrap() -> None:
    rng = np.random.default_rng(6)
    qp, qc, gp, gc = reid_labels(rng, 60, 300, ids=15, cams=3)
    dist = rng.random((60, 300)).astype(np.float32)
    r = evaluate_blocks(_blocks(dist, 16), qp, qc, gp, gc,
                        EvalOptions(per_camera=True, ci=0.9, ci_samples=200))
    for row in r.per_camera:
        sel = qc == row["camera"]
        ref = ref_evaluate(dist[sel], qp[sel], qc[sel], gp, gc)
        assert row["mAP"] == pytest.approx(ref["mAP"])
        assert row["num_valid_queries"] == ref["num_valid"]
    assert sum(row["num_queries"] for row in r.per_camera) == 60
    assert r.ci["level"] == 0.9
    for key in ("mAP", "mINP", "rank1", "rank5", "rank10", "rank20"):
        lo, hi = r.ci[key]
        assert 0.0 <= lo <= getattr(r, key) <= hi <= 1.0
