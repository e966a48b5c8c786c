"""Sparse exact re-ranking against the classic dense algorithm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_retrieval_reference import ref_evaluate, ref_rerank, reid_labels

from reidcli.retrieval.distances import prepare_features
from reidcli.retrieval.evaluate import EvalOptions, evaluate_features
from reidcli.retrieval.pipeline import Retrieval
from reidcli.retrieval.rerank import RerankParams, rerank, rerank_blocks


def _ours(qf, gf, params: RerankParams, metric: str = "euclidean", budget: int = 4096):
    return rerank(prepare_features(qf, metric), prepare_features(gf, metric), params,
                  budget).numpy()


@pytest.mark.parametrize(("k1", "k2", "lam"), [(20, 6, 0.3), (5, 1, 0.2), (7, 3, 0.0),
                                               (4, 4, 1.0), (3, 10, 0.5)])
def test_matches_classic_with_many_ties(k1: int, k2: int, lam: float) -> None:
    # Small integer features: exact float32 distances with plenty of ties and duplicates.
    rng = np.random.default_rng(k1 * 10 + k2)
    qf = rng.integers(-3, 4, (20, 6)).astype(np.float32)
    gf = rng.integers(-3, 4, (100, 6)).astype(np.float32)
    gf[10:15] = gf[3]  # exact duplicates
    qf[0] = gf[3]
    ref = ref_rerank(qf, gf, k1, k2, lam)
    assert np.abs(_ours(qf, gf, RerankParams(k1, k2, lam)) - ref).max() < 1e-5


@pytest.mark.parametrize(("k1", "k2"), [(20, 6), (6, 1), (9, 2)])
def test_matches_classic_cosine(k1: int, k2: int) -> None:
    rng = np.random.default_rng(k1)
    qf = rng.standard_normal((25, 16)).astype(np.float32)
    gf = rng.standard_normal((140, 16)).astype(np.float32)
    ref = ref_rerank(qf, gf, k1, k2, 0.3, metric="cosine")
    assert np.abs(_ours(qf, gf, RerankParams(k1, k2, 0.3), "cosine") - ref).max() < 1e-5


def test_fewer_items_than_k1() -> None:
    rng = np.random.default_rng(1)
    qf, gf = rng.standard_normal((1, 4)), rng.standard_normal((1, 4))
    assert np.abs(_ours(qf, gf, RerankParams()) - ref_rerank(qf, gf, 20, 6, 0.3)).max() < 1e-5
    qf, gf = rng.standard_normal((3, 4)), rng.standard_normal((9, 4))
    assert np.abs(_ours(qf, gf, RerankParams()) - ref_rerank(qf, gf, 20, 6, 0.3)).max() < 1e-5


def test_identical_features_do_not_produce_nan() -> None:
    out = _ours(np.ones((2, 3)), np.ones((4, 3)), RerankParams(3, 2, 0.3))
    assert np.isfinite(out).all()


def test_block_size_does_not_change_results() -> None:
    rng = np.random.default_rng(7)
    q = prepare_features(rng.standard_normal((30, 8)), "cosine")
    g = prepare_features(rng.standard_normal((90, 8)), "cosine")
    small = torch.cat([b for _, b in rerank_blocks(q, g, RerankParams(), budget=16384)])
    large = rerank(q, g, RerankParams(), budget=1 << 24)
    # Same algorithm; only the matmul blocking differs, which moves the last float bits.
    assert torch.allclose(small, large, atol=1e-6)


def test_rerank_then_evaluate_matches_reference_pipeline() -> None:
    # Junk (-1) gallery items take part in re-ranking but not in the metrics.
    rng = np.random.default_rng(11)
    qp, qc, gp, gc = reid_labels(rng, 30, 200, ids=12, cams=3)
    centres = rng.standard_normal((13, 16))
    qf = centres[qp] + 0.8 * rng.standard_normal((30, 16))
    gf = centres[np.maximum(gp, 0)] + 0.8 * rng.standard_normal((200, 16))
    ref = ref_evaluate(ref_rerank(qf, gf, 20, 6, 0.3, "cosine"), qp, qc, gp, gc)
    got = evaluate_features(qf, gf, qp, qc, gp, gc, Retrieval(rerank=RerankParams()),
                            options=EvalOptions(budget=8192))
    assert got.mAP == pytest.approx(ref["mAP"], abs=1e-9)
    assert got.rank1 == pytest.approx(ref["cmc"][0])
    assert got.rerank == {"k1": 20, "k2": 6, "lambda": 0.3}


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        RerankParams(k1=0)
    with pytest.raises(ValueError):
        RerankParams(lambda_value=1.5)


def test_normalisation_ties_follow_the_classic_order() -> None:
    # Values one ulp apart in [1.9, 2) partly merge once divided by 1.05 in float32; the
    # classic sorts the divided matrix, so those new ties must be broken by column, not by
    # the raw order.
    from reidcli.retrieval.rerank import _normalised_topk

    rng = np.random.default_rng(0)
    steps = rng.permuted(np.tile(np.arange(300), (64, 1)), axis=1)
    raw = (np.float32(1.9) + steps * np.finfo(np.float32).eps).astype(np.float32)
    d = torch.as_tensor(raw)
    m = torch.full((64,), 1.05)
    divided = (d / m.unsqueeze(1)).numpy()
    assert len(np.unique(raw[0])) == 300 and len(np.unique(divided[0])) < 300
    for length in (1, 5, 21, 300):
        expected = np.argsort(divided, axis=1, kind="stable")[:, :length]
        assert np.array_equal(_normalised_topk(d, m, length).numpy(), expected)


def test_shifted_normalisation_ties_follow_the_dense_order() -> None:
    # The neighbour pass ranks t = |x_j|^2 - 2 x_i.x_j and only shifts (by |x_i|^2), clamps
    # and divides the candidates: rounding in the shift and the division merges distinct
    # t into ties, and negative t clamp to a tie at 0; all must be broken by column, as a
    # stable argsort of the dense clamp(t + shift) / m does.
    from reidcli.retrieval.rerank import _normalised_topk

    rng = np.random.default_rng(1)
    eps = np.finfo(np.float32).eps
    steps = rng.permuted(np.tile(np.arange(300), (64, 1)), axis=1)
    t = (np.float32(-0.9) + steps * np.float32(eps / 4)).astype(np.float32)
    t[:32, :40] = rng.uniform(-1.2, -1.0, size=(32, 40)).astype(np.float32)  # clamped to 0
    shift = torch.as_tensor(rng.uniform(0.9, 1.1, size=64).astype(np.float32))
    m = torch.full((64,), 1.05)
    tt = torch.as_tensor(t)
    dense = ((tt + shift.unsqueeze(1)).clamp(min=0.0) / m.unsqueeze(1)).numpy()
    for length in (1, 5, 21, 300):
        expected = np.argsort(dense, axis=1, kind="stable")[:, :length]
        got = _normalised_topk(tt, m, length, shift=shift).numpy()
        assert np.array_equal(got, expected)
