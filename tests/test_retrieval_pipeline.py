"""`Retrieval`: one object for prepare -> DBA/QE -> re-ranking or plain distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_retrieval_reference import ref_dba, ref_qe, ref_rerank

from reidcli.errors import BankError
from reidcli.retrieval.bank import write_bank
from reidcli.retrieval.distances import prepare_features, sq_norms, sqdist, stable_topk
from reidcli.retrieval.distfile import Labels
from reidcli.retrieval.evaluate import EvalOptions, evaluate_path
from reidcli.retrieval.expansion import expand
from reidcli.retrieval.export import rerank_bank
from reidcli.retrieval.pipeline import FeatureSource, Retrieval, open_source
from reidcli.retrieval.rerank import RerankParams, rerank_blocks
from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits

SPEC = SyntheticSpec(num_query=30, num_gallery=160, num_ids=25, dim=16, seed=3)
# A small budget so that every path yields several blocks.
BUDGET = 16 * 1024
SETTINGS = [
    Retrieval(),
    Retrieval("euclidean"),
    Retrieval(qe=3, dba=2),
    Retrieval(rerank=RerankParams()),
    Retrieval("euclidean", dba=1, qe=2, rerank=RerankParams(9, 2, 0.5)),
]


@pytest.fixture(scope="module")
def splits():
    return synthetic_splits(SPEC)


def _dense(blocks, nq: int, ng: int) -> np.ndarray:
    out = np.full((nq, ng), np.nan, np.float32)
    for start, block in blocks:
        arr = torch.as_tensor(block).numpy()
        out[start:start + arr.shape[0]] = arr
    return out


def _old_chain(qf, gf, metric, qe, dba, params) -> np.ndarray:
    """The chain as evaluate_features / rerank_bank spelled it before `Retrieval`."""
    q, g = prepare_features(qf, metric), prepare_features(gf, metric)
    q, g = expand(q, g, qe=qe, dba=dba, metric=metric, budget=BUDGET)
    if params is not None:
        return _dense(rerank_blocks(q, g, params, BUDGET), len(qf), len(gf))
    return sqdist(q, g, sq_norms(q), sq_norms(g)).numpy()


@pytest.mark.parametrize("retrieval", SETTINGS)
def test_attrs_round_trip(retrieval: Retrieval) -> None:
    attrs = retrieval.to_attrs()
    assert Retrieval.from_attrs(attrs) == retrieval
    assert ("k1" in attrs) == (retrieval.rerank is not None)


def test_plain_and_changed() -> None:
    assert Retrieval.from_attrs({}) == Retrieval()
    assert Retrieval().is_plain() and Retrieval("euclidean").is_plain()
    assert not Retrieval(qe=1).is_plain() and not Retrieval(rerank=RerankParams()).is_plain()
    assert Retrieval().changed() == []
    assert Retrieval("euclidean", dba=2).changed() == ["metric", "dba"]
    with pytest.raises(BankError, match="metric"):
        Retrieval("manhattan")  # type: ignore[arg-type]
    with pytest.raises(BankError, match="qe"):
        Retrieval(qe=-1)


def test_dimension_check() -> None:
    with pytest.raises(BankError, match="query features have 4 dimensions, gallery 5"):
        Retrieval().prepare(np.ones((2, 4)), np.ones((3, 5)))


@pytest.mark.parametrize("retrieval", SETTINGS)
def test_blocks_equal_the_old_chain(splits, retrieval: Retrieval) -> None:
    qf, gf = splits["query"].feats, splits["gallery"].feats
    q, g = retrieval.prepare(qf, gf, budget=BUDGET)
    got = _dense(retrieval.blocks(q, g, BUDGET), len(qf), len(gf))
    old = _old_chain(qf, gf, retrieval.metric, retrieval.qe, retrieval.dba, retrieval.rerank)
    assert np.array_equal(got, old)


def test_blocks_match_the_dense_references(splits) -> None:
    qf, gf = splits["query"].feats, splits["gallery"].feats
    r = Retrieval("euclidean", dba=2, qe=3, rerank=RerankParams(9, 3, 0.3))
    got = _dense(r.blocks(*r.prepare(qf, gf, budget=BUDGET), BUDGET), len(qf), len(gf))
    g_ref = ref_dba(gf, 2, normalize=False)
    q_ref = ref_qe(qf, g_ref, 3, normalize=False)
    assert np.abs(got - ref_rerank(q_ref, g_ref, 9, 3, 0.3)).max() < 1e-4


@pytest.mark.parametrize("retrieval", [Retrieval(), Retrieval(rerank=RerankParams())])
def test_topk_is_the_sorted_head_of_the_blocks(splits, retrieval: Retrieval) -> None:
    qf, gf = splits["query"].feats, splits["gallery"].feats
    q, g = retrieval.prepare(qf, gf)
    full = torch.as_tensor(_dense(retrieval.blocks(q, g, BUDGET), len(qf), len(gf)))
    vals, idx = retrieval.topk(q, g, 7, BUDGET)
    ref_vals, ref_idx = stable_topk(full, 7)
    assert torch.equal(idx, ref_idx)
    assert torch.allclose(vals, ref_vals, atol=1e-6)


@pytest.mark.parametrize("r", [Retrieval(qe=2, rerank=RerankParams(9, 2, 0.4)),
                               Retrieval("euclidean")])
def test_distance_file_records_and_replays_the_settings(splits, tmp_path, r) -> None:
    # Plain evaluation of a bank drops the unlabelled gallery items, a distance file keeps
    # them: the metrics agree because the protocol ignores them.
    bank = tmp_path / "bank.h5"
    write_bank(bank, splits)
    dist = rerank_bank(bank, tmp_path / "d.h5", r, budget=BUDGET)
    with open_source(dist) as src:
        assert src.retrieval == r
        assert len(src.query) == SPEC.num_query and len(src.gallery) == SPEC.num_gallery
        from_file = src.rows([4, 0])
    with open_source(bank, r) as src:
        assert np.array_equal(src.rows([4, 0], budget=BUDGET), from_file)
    opts = EvalOptions(budget=BUDGET)
    a, b = evaluate_path(bank, r, options=opts), evaluate_path(dist, options=opts)
    assert (a.mAP, a.mINP, a.cmc, a.rerank, a.qe) == (b.mAP, b.mINP, b.cmc, b.rerank, b.qe)
    assert a.rerank == (r.rerank.to_dict() if r.rerank else None)
    with pytest.raises(BankError, match="distance file: qe, gallery_split need a feature bank"):
        open_source(dist, Retrieval(qe=1), gallery_split="test")


def test_feature_source_rows_from_tensors(splits) -> None:
    q, g = splits["query"], splits["gallery"]
    labels = [Labels(s.pids, s.camids, []) for s in (q, g)]
    for r in (Retrieval(), Retrieval(dba=1)):
        from_arrays = FeatureSource(q.feats, g.feats, *labels, r).rows([3, 1], budget=BUDGET)
        from_tensors = FeatureSource(torch.as_tensor(q.feats), torch.as_tensor(g.feats),
                                     *labels, r).rows([3, 1], budget=BUDGET)
        assert np.array_equal(from_arrays, from_tensors)
        full = _dense(FeatureSource(q.feats, g.feats, *labels, r).blocks(budget=BUDGET),
                      len(q), len(g))
        assert np.allclose(from_arrays, full[[3, 1]], atol=1e-5)
