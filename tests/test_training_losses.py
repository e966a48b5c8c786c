"""Loss values on hand-made batches, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from reidcli.training.losses import (
    IdLoss,
    ReidLoss,
    TripletLoss,
    accuracy,
    euclidean_distances,
    hardest_pairs,
    jpm_combine,
)

# Two identities on a plane: a0=(0,0), a1=(3,0) (id 0); b0=(0,4), b1=(0,8) (id 1).
# Distances: a0a1=3, a0b0=4, a0b1=8, a1b0=5, a1b1=sqrt(73), b0b1=4.
# Hardest positive / negative per anchor: a0 3/4, a1 3/5, b0 4/4, b1 4/8.
FEATS = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 8.0]])
TARGETS = torch.tensor([0, 0, 1, 1])


def test_euclidean_distances_match_hand_values() -> None:
    d = euclidean_distances(FEATS, FEATS)
    assert d[0, 1].item() == pytest.approx(3.0)
    assert d[1, 3].item() == pytest.approx(math.sqrt(73))
    assert d[2, 2].item() == pytest.approx(0.0, abs=1e-5)


def test_hardest_pairs() -> None:
    d_ap, d_an = hardest_pairs(FEATS, TARGETS)
    assert d_ap.tolist() == pytest.approx([3.0, 3.0, 4.0, 4.0])
    assert d_an.tolist() == pytest.approx([4.0, 5.0, 4.0, 8.0])


def test_soft_margin_triplet_value() -> None:
    # d_ap - d_an = -1, -2, 0, -4 -> mean of log(1 + exp(.)).
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-2)) + math.log(2.0)
                + math.log1p(math.exp(-4))) / 4
    assert expected == pytest.approx(0.2878717, abs=1e-6)
    assert TripletLoss(None)(FEATS, TARGETS).item() == pytest.approx(expected, abs=1e-6)


def test_hinge_triplet_value() -> None:
    # max(0, d_ap - d_an + 1.5) = 0.5, 0, 1.5, 0 -> mean 0.5.
    assert TripletLoss(1.5)(FEATS, TARGETS).item() == pytest.approx(0.5, abs=1e-6)


def test_triplet_uses_unnormalised_features() -> None:
    # Scaling the features scales the hinge terms: margin 0 on 2x features doubles them.
    base = TripletLoss(0.0)(FEATS + torch.tensor([0.0, 0.0]), TARGETS)
    assert base.item() == pytest.approx(0.0)  # every hardest negative is at least as far
    scaled = TripletLoss(1.5)(2 * FEATS, TARGETS)
    # 2x: d_ap - d_an = -2, -4, 0, -8 -> hinge 0, 0, 1.5, 0 -> 0.375
    assert scaled.item() == pytest.approx(0.375, abs=1e-6)


def test_triplet_single_identity_batch_is_zero_with_gradient_path() -> None:
    feats = torch.randn(4, 3, requires_grad=True)
    loss = TripletLoss(None)(feats, torch.zeros(4, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert feats.grad is not None


def test_triplet_gradient_is_finite_with_duplicate_features() -> None:
    feats = torch.ones(4, 3, requires_grad=True)
    TripletLoss(None)(feats, TARGETS).backward()
    assert torch.isfinite(feats.grad).all()


def test_id_loss_value() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 1])
    # -log softmax: sample 0 -> log(1+e^-2), sample 1 -> log(1+e^-1)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))) / 2
    assert IdLoss()(logits, targets).item() == pytest.approx(expected, abs=1e-6)


def test_id_loss_label_smoothing_value() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 1])
    eps = 0.1
    nll0 = [math.log1p(math.exp(-2)), 2 + math.log1p(math.exp(-2))]  # -log p0, -log p1
    nll1 = [1 + math.log1p(math.exp(-1)), math.log1p(math.exp(-1))]
    s0 = (1 - eps) * nll0[0] + eps * sum(nll0) / 2
    s1 = (1 - eps) * nll1[1] + eps * sum(nll1) / 2
    assert (s0 + s1) / 2 == pytest.approx(0.295095, abs=1e-6)
    assert IdLoss(eps)(logits, targets).item() == pytest.approx((s0 + s1) / 2, abs=1e-6)


def test_jpm_combine_weights() -> None:
    vals = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)]
    assert jpm_combine(vals).item() == pytest.approx(0.5 * 1.0 + 0.5 * 3.0)
    assert jpm_combine(vals[:1]).item() == 1.0
    with pytest.raises(ValueError):
        jpm_combine([])


def test_reid_loss_combines_branches_and_weights() -> None:
    logits_g = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    logits_l = torch.zeros(4, 2)  # uniform -> CE = log 2
    feats_g = FEATS
    feats_l = 2 * FEATS
    loss = ReidLoss(margin=1.5, id_weight=1.0, triplet_weight=2.0)
    parts = loss([logits_g, logits_l, logits_l], [feats_g, feats_l, feats_l], TARGETS)
    id_g = IdLoss()(logits_g, TARGETS).item()
    expected_id = 0.5 * id_g + 0.5 * math.log(2.0)
    expected_tri = 0.5 * 0.5 + 0.5 * 0.375
    assert parts.id.item() == pytest.approx(expected_id, abs=1e-6)
    assert parts.triplet.item() == pytest.approx(expected_tri, abs=1e-6)
    assert parts.total.item() == pytest.approx(expected_id + 2.0 * expected_tri, abs=1e-6)


def test_losses_run_in_float32_under_half_inputs() -> None:
    parts = ReidLoss()([torch.zeros(4, 2, dtype=torch.bfloat16)],
                       [FEATS.to(torch.bfloat16)], TARGETS)
    assert parts.total.dtype == torch.float32


def test_accuracy() -> None:
    logits = torch.tensor([[2.0, 0.0], [1.0, 2.0], [0.0, 1.0], [0.0, 3.0]])  # 2nd is wrong
    assert accuracy(logits, TARGETS).item() == pytest.approx(0.75)
