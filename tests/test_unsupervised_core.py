"""Cluster contrast's parts: Jaccard graph + DBSCAN pseudo labels, the cluster memory, the
fixed-iteration P x K sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits
from reidcli.unsupervised import (
    ClusterMemory,
    ClusterParams,
    FixedIterations,
    camera_centred,
    jaccard_graph,
    label_agreement,
    pseudo_labels,
)
from reidcli.unsupervised.pseudo_labels import dbscan_labels


def dense_jaccard_reference(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Slow dense reference written from the k-reciprocal encoding (Zhong et al. 2017) as the
    cluster-contrast code applies it: raw squared distances of normalised features, top-k1
    lists (self included), softmax(-d) weights, top-k2 query expansion."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    d = np.maximum(2 - 2 * x @ x.T, 0)
    rank = np.argsort(d, axis=1, kind="stable")[:, :k1]

    def recip(i: int, k: int) -> np.ndarray:
        fwd = rank[i, :k + 1]
        return np.array([j for j in fwd if i in rank[j, :k + 1]], dtype=np.int64)

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        exp = list(r)
        for c in r:
            rc = recip(int(c), half)
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                exp.extend(rc)
        exp = np.unique(exp)
        w = np.exp(-(2 - 2 * x[i] @ x[exp].T))
        v[i, exp] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    m = np.minimum(v[:, None, :], v[None, :, :]).sum(-1)
    return np.maximum(1 - m / (2 - m), 0)


def blobs(sizes: list[int], dim: int = 16, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """Clusters around orthogonal axes e_0, e_1, ... (one blob per size, in order)."""
    rng = np.random.default_rng(seed)
    out = []
    for c, size in enumerate(sizes):
        centre = np.zeros(dim)
        centre[c] = 1.0
        out.append(centre + noise * rng.standard_normal((size, dim)))
    return np.concatenate(out).astype(np.float32)


def test_hand_made_clusters_and_outliers() -> None:
    # Three blobs (10, 8, 6 images) and two lone images on their own axes.
    x = blobs([10, 8, 6, 1, 1])
    result = pseudo_labels(x, ClusterParams(eps=0.6, min_samples=4, k1=8, k2=2))
    expected = np.array([0] * 10 + [1] * 8 + [2] * 6 + [-1, -1])
    np.testing.assert_array_equal(result.labels, expected)
    assert result.num_clusters == 3 and result.num_outliers == 2
    assert result.outlier_share == pytest.approx(2 / 26)


def test_a_blob_below_min_samples_is_outliers() -> None:
    x = blobs([6, 3])
    result = pseudo_labels(x, ClusterParams(eps=0.6, min_samples=4, k1=6, k2=1))
    np.testing.assert_array_equal(result.labels, [0] * 6 + [-1] * 3)


def test_identical_images_are_neighbours_at_distance_zero() -> None:
    # Stored zero distances must count as neighbours (not be dropped as sparse zeros).
    x = np.repeat(blobs([2], noise=0.0), 2, axis=0)
    graph = jaccard_graph(x, k1=4, k2=1, radius=0.5)
    assert graph.nnz == 16 and np.all(graph.data == 0.0)
    np.testing.assert_array_equal(dbscan_labels(graph, 0.5, 4), [0, 0, 0, 0])


@pytest.mark.parametrize(("k1", "k2"), [(6, 3), (10, 1), (20, 6)])
def test_sparse_graph_matches_the_dense_reference(k1: int, k2: int) -> None:
    splits = synthetic_splits(SyntheticSpec(num_query=0, num_gallery=90, num_ids=12, dim=24,
                                            noise=0.5, seed=3))
    x = np.asarray(splits["gallery"].feats)
    dense = dense_jaccard_reference(x, k1, k2)
    radius = 0.7
    graph = jaccard_graph(x, k1, k2, radius, budget=4096).tocoo()
    stored = np.zeros_like(dense, dtype=bool)
    stored[graph.row, graph.col] = True
    within = dense <= radius
    assert 3 * len(x) < within.sum() < 0.5 * within.size  # a real test: neither all nor none
    # Same pairs within the radius (a tie at the border would need float-rounding luck).
    np.testing.assert_array_equal(stored, within)
    np.testing.assert_allclose(graph.data, dense[graph.row, graph.col], atol=1e-5)
    # So DBSCAN's labels on the sparse graph are those on the dense matrix.
    from sklearn.cluster import DBSCAN

    ref = DBSCAN(eps=radius, min_samples=4, metric="precomputed").fit_predict(dense)
    np.testing.assert_array_equal(pseudo_labels(x, ClusterParams(radius, 4, k1, k2)).labels, ref)


def test_label_agreement_reports_purity_on_clustered_images_only() -> None:
    pseudo = np.array([0, 0, 1, 1, -1])
    assert label_agreement(pseudo, np.array([5, 5, 7, 7, 9])) == {
        "purity_ari": 1.0, "purity_nmi": 1.0}
    mixed = label_agreement(pseudo, np.array([5, 7, 5, 7, 5]))
    assert mixed["purity_ari"] < 0 and mixed["purity_nmi"] == pytest.approx(0.0, abs=1e-12)
    assert label_agreement(pseudo, np.full(5, -1)) == {}


def test_memory_starts_at_normalised_cluster_means() -> None:
    feats = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 4.0], [9.0, 9.0]])
    mem = ClusterMemory.from_features(feats, np.array([0, 0, 1, -1]))
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(mem.centroids, torch.tensor([[s, s], [0.0, 1.0]]))


def test_memory_loss_by_hand() -> None:
    mem = ClusterMemory(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), temperature=0.5)
    feats = torch.tensor([[3.0, 4.0]], requires_grad=True)  # normalised: (0.6, 0.8)
    loss, logits = mem.loss(feats, torch.tensor([1]))
    torch.testing.assert_close(logits, torch.tensor([[1.2, 1.6]]))
    expected = -1.6 + math.log(math.exp(1.2) + math.exp(1.6))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_hard_update_moves_toward_the_least_similar_instance() -> None:
    mem = ClusterMemory(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), momentum=0.2, update="hard")
    # Cluster 0: (0.8, 0.6) has similarity 0.8, (0.6, 0.8) 0.6 -> the latter is used.
    feats = torch.tensor([[0.8, 0.6], [0.6, 0.8], [0.0, 5.0]])
    mem.update(feats, torch.tensor([0, 0, 1]))
    m0 = torch.tensor([0.2 + 0.8 * 0.6, 0.8 * 0.8])
    torch.testing.assert_close(mem.centroids[0], m0 / m0.norm())
    torch.testing.assert_close(mem.centroids[1], torch.tensor([0.0, 1.0]))


def test_mean_update_takes_every_instance_in_turn() -> None:
    mem = ClusterMemory(torch.tensor([[1.0, 0.0]]), momentum=0.5, update="mean")
    mem.update(torch.tensor([[0.0, 2.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    m = torch.tensor([0.5, 0.5]) / math.sqrt(0.5)  # after the first instance
    m = 0.5 * m + 0.5 * torch.tensor([0.0, 1.0])
    torch.testing.assert_close(mem.centroids[0], m / m.norm())


def test_fixed_iterations_draw_exactly_iters_pk_batches() -> None:
    labels = [0] * 5 + [1] * 4 + [2] * 3 + [-1] * 4
    sampler = FixedIterations(labels, p=2, k=2, iters=7, seed=3)
    sampler.set_epoch(1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7
    for batch in batches:
        groups = [labels[i] for i in batch]
        assert len(batch) == 4 and -1 not in groups
        assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]
    assert batches == list(sampler)  # same (seed, epoch) -> same batches
    sampler.set_epoch(2)
    assert list(sampler) != batches
    halves = [list(FixedIterations(labels, 2, 2, 7, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves, strict=True)] == list(
        FixedIterations(labels, 2, 2, 7, seed=3))


def camera_world(shift: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four identities (axes e_0..e_3) seen by two cameras, each camera adding its own offset
    (e_4 or e_5, `shift` long): every image is nearer the other identities of its camera
    than its own identity in the other camera."""
    rng = np.random.default_rng(seed)
    ids, cams, x = [], [], []
    for pid in range(4):
        for cam in range(2):
            for _ in range(5):
                v = np.zeros(8)
                v[pid] = 1.0
                v[4 + cam] = shift
                x.append(v + 0.02 * rng.standard_normal(8))
                ids.append(pid)
                cams.append(cam)
    return np.array(x, dtype=np.float32), np.array(ids), np.array(cams)


def test_camera_centring_by_hand() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0]], dtype=np.float32)
    cams = np.array([0, 0, -1, 1])
    out = camera_centred(x, cams).numpy()
    # Camera 0: normalised rows (1, 0) and (0, 1), mean (0.5, 0.5), residuals +-(0.5, -0.5).
    h = 1 / math.sqrt(2)
    np.testing.assert_allclose(out[0], [h, -h], atol=1e-6)
    np.testing.assert_allclose(out[1], [-h, h], atol=1e-6)
    np.testing.assert_allclose(out[2], [h, h], atol=1e-6)  # unknown camera: kept
    np.testing.assert_allclose(out[3], [0.0, 0.0], atol=1e-6)  # alone in its camera
    # Fewer than two known cameras: nothing to align, only the normalisation.
    one = camera_centred(x, np.array([0, 0, -1, 0])).numpy()
    np.testing.assert_allclose(one, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(camera_centred(x, None).numpy(), one, atol=1e-6)


def test_camera_centring_lets_clusters_follow_identities() -> None:
    x, ids, cams = camera_world()
    params = ClusterParams(eps=0.5, min_samples=4, k1=10, k2=2)
    raw = pseudo_labels(x, params)
    centred = pseudo_labels(camera_centred(x, cams), params)
    # Raw: every identity is split by camera (8 single-camera clusters); centred: the
    # four identities across both cameras.
    np.testing.assert_array_equal(raw.labels, ids * 2 + cams)
    np.testing.assert_array_equal(centred.labels, ids)
