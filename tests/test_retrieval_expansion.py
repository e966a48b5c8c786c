"""Query expansion and database-side augmentation against direct dense implementations."""

from __future__ import annotations

import numpy as np
import pytest
from test_retrieval_reference import dense_sqdist, ref_dba, ref_evaluate, ref_qe, reid_labels

from reidcli.retrieval.distances import prepare_features
from reidcli.retrieval.evaluate import evaluate_features
from reidcli.retrieval.expansion import database_augmentation, expand, query_expansion
from reidcli.retrieval.pipeline import Retrieval


@pytest.mark.parametrize("k", [1, 3, 10])
def test_query_expansion(k: int) -> None:
    rng = np.random.default_rng(k)
    q = rng.integers(-3, 4, (20, 5)).astype(np.float32)
    g = rng.integers(-3, 4, (60, 5)).astype(np.float32)  # ties: stable order matters
    ours = query_expansion(prepare_features(q, "euclidean"), prepare_features(g, "euclidean"),
                           k, "euclidean", budget=1024)
    assert np.allclose(ours.numpy(), ref_qe(q, g, k, normalize=False), atol=1e-6)


@pytest.mark.parametrize("k", [1, 4])
def test_database_augmentation(k: int) -> None:
    rng = np.random.default_rng(10 + k)
    g = rng.integers(-3, 4, (50, 5)).astype(np.float32)
    g[7] = g[8]  # a duplicate: its own copy is a neighbour, itself is not
    ours = database_augmentation(prepare_features(g, "euclidean"), k, "euclidean", budget=1024)
    assert np.allclose(ours.numpy(), ref_dba(g, k, normalize=False), atol=1e-6)


def test_cosine_expansion_is_renormalised_and_evaluates_like_reference() -> None:
    rng = np.random.default_rng(3)
    qp, qc, gp, gc = reid_labels(rng, 25, 150, ids=10, cams=3)
    q = rng.standard_normal((25, 12)).astype(np.float32)
    g = rng.standard_normal((150, 12)).astype(np.float32)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    g_ref = ref_dba(gn, 2, normalize=True)
    q_ref = ref_qe(qn, g_ref, 3, normalize=True)
    q_ours, g_ours = expand(prepare_features(q, "cosine"), prepare_features(g, "cosine"),
                            qe=3, dba=2, metric="cosine")
    assert np.allclose(g_ours.numpy(), g_ref, atol=1e-5)
    assert np.allclose(q_ours.numpy(), q_ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(q_ours.numpy(), axis=1), 1, atol=1e-5)
    # DBA makes mutual neighbours exactly equal, so the metrics are compared on the library's
    # own expanded features (checked above) to keep float rounding out of those ties.
    ref = ref_evaluate(dense_sqdist(q_ours.numpy(), g_ours.numpy()), qp, qc, gp, gc)
    got = evaluate_features(q, g, qp, qc, gp, gc, Retrieval(qe=3, dba=2))
    assert got.mAP == pytest.approx(ref["mAP"], abs=1e-6)
    assert (got.qe, got.dba) == (3, 2)


def test_zero_means_off() -> None:
    q = prepare_features(np.eye(3), "cosine")
    assert expand(q, q, qe=0, dba=0)[0] is q
