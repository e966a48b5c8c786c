"""SIE, JPM, BNNeck, test features and PASS part tokens."""

from __future__ import annotations

import pytest
import torch

from reidcli.errors import ReidError
from reidcli.models import ModelConfig, ReidOutput, build_model
from reidcli.models.jpm import jpm_groups, jpm_token_order
from reidcli.models.sie import SideInfoEmbedding

TINY = "vit-tiny-test"
D = 64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def images(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, 256, 128)


# --- SIE ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("camera", "view", "rows"), [(True, False, 6), (False, True, 8), (True, True, 48)]
)
def test_sie_table_sizes(camera: bool, view: bool, rows: int) -> None:
    cfg = ModelConfig(backbone=TINY, sie_camera=camera, sie_view=view, num_cams=6, num_views=8)
    model = build_model(cfg)
    assert model.sie is not None
    assert model.sie.embed.shape == (rows, 1, D)
    assert model.sie.embed.std().item() == pytest.approx(0.02, rel=0.25)


def test_no_sie_table_when_off() -> None:
    model = build_model(ModelConfig(backbone=TINY, num_cams=6))
    assert model.sie is None
    assert not any(k.startswith("sie.") for k in model.state_dict())


def test_sie_indexing() -> None:
    cams = torch.tensor([0, 2, 5, 3])
    views = torch.tensor([1, 0, 7, 4])
    camera_only = SideInfoEmbedding(D, 6, 8, use_camera=True, use_view=False)
    view_only = SideInfoEmbedding(D, 6, 8, use_camera=False, use_view=True)
    both = SideInfoEmbedding(D, 6, 8, use_camera=True, use_view=True)
    assert camera_only.index(cams, views).tolist() == [0, 2, 5, 3]
    assert view_only.index(cams, views).tolist() == [1, 0, 7, 4]
    # cam * V + view with V = 8: the reference's off-by-one is not reproduced.
    assert both.index(cams, views).tolist() == [1, 16, 47, 28]
    # view ids are ignored (may be absent) when only the camera is used, and vice versa.
    assert camera_only.index(cams, None).tolist() == [0, 2, 5, 3]
    out = both(cams, views)
    assert out.shape == (4, 1, D)
    torch.testing.assert_close(out[2], 3.0 * both.embed[47])


def test_sie_errors() -> None:
    both = SideInfoEmbedding(D, 6, 8, use_camera=True, use_view=True)
    with pytest.raises(ReidError, match="camera ids"):
        both(None, torch.tensor([0]))
    with pytest.raises(ReidError, match="view ids"):
        both(torch.tensor([0]), None)
    with pytest.raises(ReidError, match=r"camera id out of range \[0, 5\]"):
        both(torch.tensor([6]), torch.tensor([0]))
    with pytest.raises(ReidError, match="view id out of range"):
        both(torch.tensor([0]), torch.tensor([-2]))


def test_sie_unknown_id_uses_the_mean_embedding() -> None:
    both = SideInfoEmbedding(D, 6, 8, use_camera=True, use_view=True)
    table = both.embed.detach().view(6, 8, 1, D)
    out = both(torch.tensor([-1, 2, -1, 1]), torch.tensor([3, -1, -1, 4])).detach()
    torch.testing.assert_close(out[0], 3.0 * table[:, 3].mean(0))
    torch.testing.assert_close(out[1], 3.0 * table[2].mean(0))
    torch.testing.assert_close(out[2], 3.0 * table.mean((0, 1)))
    torch.testing.assert_close(out[3], 3.0 * table[1, 4])
    camera_only = SideInfoEmbedding(D, 6, 1, use_camera=True, use_view=False)
    torch.testing.assert_close(camera_only(torch.tensor([-1]), None)[0].detach(),
                               3.0 * camera_only.embed.detach().mean(0))


def test_sie_is_added_to_every_token_including_cls() -> None:
    cfg = ModelConfig(backbone=TINY, sie_camera=True, num_cams=3, sie_coef=2.5)
    model = build_model(cfg).eval()
    x = images(1)
    t0 = model.tokens(x, torch.tensor([0]))
    t2 = model.tokens(x, torch.tensor([2]))
    delta = 2.5 * (model.sie.embed[2] - model.sie.embed[0])  # (1, D)
    assert t0.shape[1] == 1 + 128
    torch.testing.assert_close(t2 - t0, delta.expand_as(t0[0]).unsqueeze(0))
    # Used at test time as well: the feature depends on the camera.
    assert not torch.allclose(model(x, torch.tensor([0])), model(x, torch.tensor([2])))
    with pytest.raises(ReidError):
        model(x)


# --- JPM ---------------------------------------------------------------------------------

# The worked example: 16x8 = 128 patches, shift 5, shuffle 2 groups, 4 local groups.
# Reference behaviour rotates left by shift-1 = 4: [4..127, 0..3]; shuffling with 2 groups
# interleaves the halves (r[k], r[64+k]); groups are contiguous runs of 32.
WORKED_EXAMPLE_REFERENCE = [
    [4, 68, 5, 69, 6, 70, 7, 71, 8, 72, 9, 73, 10, 74, 11, 75,
     12, 76, 13, 77, 14, 78, 15, 79, 16, 80, 17, 81, 18, 82, 19, 83],
    [20, 84, 21, 85, 22, 86, 23, 87, 24, 88, 25, 89, 26, 90, 27, 91,
     28, 92, 29, 93, 30, 94, 31, 95, 32, 96, 33, 97, 34, 98, 35, 99],
    [36, 100, 37, 101, 38, 102, 39, 103, 40, 104, 41, 105, 42, 106, 43, 107,
     44, 108, 45, 109, 46, 110, 47, 111, 48, 112, 49, 113, 50, 114, 51, 115],
    [52, 116, 53, 117, 54, 118, 55, 119, 56, 120, 57, 121, 58, 122, 59, 123,
     60, 124, 61, 125, 62, 126, 63, 127, 64, 0, 65, 1, 66, 2, 67, 3],
]  # fmt: skip
# The paper's shift (exact_shift=True) rotates by 5: [5..127, 0..4].
WORKED_EXAMPLE_EXACT = [
    [5, 69, 6, 70, 7, 71, 8, 72, 9, 73, 10, 74, 11, 75, 12, 76,
     13, 77, 14, 78, 15, 79, 16, 80, 17, 81, 18, 82, 19, 83, 20, 84],
    [21, 85, 22, 86, 23, 87, 24, 88, 25, 89, 26, 90, 27, 91, 28, 92,
     29, 93, 30, 94, 31, 95, 32, 96, 33, 97, 34, 98, 35, 99, 36, 100],
    [37, 101, 38, 102, 39, 103, 40, 104, 41, 105, 42, 106, 43, 107, 44, 108,
     45, 109, 46, 110, 47, 111, 48, 112, 49, 113, 50, 114, 51, 115, 52, 116],
    [53, 117, 54, 118, 55, 119, 56, 120, 57, 121, 58, 122, 59, 123, 60, 124,
     61, 125, 62, 126, 63, 127, 64, 0, 65, 1, 66, 2, 67, 3, 68, 4],
]  # fmt: skip


def test_jpm_permutation_worked_example() -> None:
    assert jpm_groups(128, shift=5, shuffle=2, groups=4) == WORKED_EXAMPLE_REFERENCE
    assert jpm_groups(128, shift=5, shuffle=2, groups=4, exact_shift=True) == WORKED_EXAMPLE_EXACT


def test_jpm_permutation_edge_cases() -> None:
    # 210 patches (stride 12), 4 groups of 52: the last 2 shuffled tokens are dropped.
    groups = jpm_groups(210, shift=5, shuffle=2, groups=4)
    assert [len(g) for g in groups] == [52] * 4
    flat = [i for g in groups for i in g]
    assert len(set(flat)) == 208
    # Odd counts are padded with the second-to-last rotated token, as the reference does.
    order = jpm_token_order(5, shift=1, shuffle=2)
    # [0, 1, 2, 3, 4] + [3] -> halves [0, 1, 2] and [3, 4, 3] -> interleaved.
    assert order.tolist() == [0, 3, 1, 4, 2, 3]
    # Shuffle 1 and shift 1 leave the order alone.
    assert jpm_token_order(6, shift=1, shuffle=1).tolist() == list(range(6))


def test_jpm_branches_and_feature_dim() -> None:
    cfg = ModelConfig(backbone=TINY, jpm=True, num_classes=7, jpm_groups=3)
    model = build_model(cfg)
    assert model.num_branches == 4 and model.feat_dim == 4 * D
    # One shared local branch (a block + norm), not one per group.
    assert sum(1 for k in model.state_dict() if k.startswith("jpm.block.norm1.weight")) == 1
    out = model.train()(images())
    assert isinstance(out, ReidOutput)
    assert len(out.feats) == len(out.logits) == 4
    assert all(f.shape == (4, D) for f in out.feats)
    assert all(lg.shape == (4, 7) for lg in out.logits)


def test_jpm_default_test_feature_is_5d() -> None:
    model = build_model(ModelConfig(backbone=TINY, jpm=True)).eval()
    assert model.feat_dim == 5 * D
    x = images(2)
    feats = model.branch_features(x)
    out = model(x)
    assert out.shape == (2, 5 * D)
    expected = torch.cat([feats[0], *(f / 4 for f in feats[1:])], dim=1)
    torch.testing.assert_close(out, expected)


def test_jpm_matches_unbatched_reference_computation() -> None:
    model = build_model(ModelConfig(backbone=TINY, jpm=True)).eval()
    vit = model.backbone
    x = images(2)
    with torch.no_grad():
        tokens = model.tokens(x)
        for block in vit.blocks[:-1]:
            tokens = block(tokens)
        feats = model.branch_features(x)
        # Global branch = last block + norm on the block L-1 output (= plain ViT CLS output).
        torch.testing.assert_close(feats[0], vit.forward_features(x)[:, 0])
        cls, patches = tokens[:, :1], tokens[:, 1:]
        for i, group in enumerate(WORKED_EXAMPLE_REFERENCE):
            seq = torch.cat([cls, patches[:, group]], dim=1)
            local = model.jpm.norm(model.jpm.block(seq))[:, 0]
            torch.testing.assert_close(feats[1 + i], local)


def test_jpm_local_branch_starts_as_copy_of_last_block() -> None:
    model = build_model(ModelConfig(backbone=TINY, jpm=True))
    last = model.backbone.blocks[-1].state_dict()
    for key, value in model.jpm.block.state_dict().items():
        torch.testing.assert_close(value, last[key])
        assert value.data_ptr() != last[key].data_ptr()
    with torch.no_grad():
        model.backbone.blocks[-1].mlp.fc1.weight.add_(1.0)
    model.sync_jpm()
    torch.testing.assert_close(
        model.jpm.block.mlp.fc1.weight, model.backbone.blocks[-1].mlp.fc1.weight
    )


# --- BNNeck and test features --------------------------------------------------------------


def test_bnneck_frozen_bias_and_classifier() -> None:
    model = build_model(ModelConfig(backbone=TINY, num_classes=1000))
    head = model.heads[0]
    assert head.bn.bias.requires_grad is False
    assert head.bn.weight.requires_grad is True
    assert head.classifier.bias is None
    assert head.classifier.weight.shape == (1000, D)
    assert head.classifier.weight.std().item() == pytest.approx(0.001, rel=0.1)


def test_train_output_logits_from_post_bn_features() -> None:
    model = build_model(ModelConfig(backbone=TINY, num_classes=5)).train()
    out = model(images())
    assert len(out.feats) == len(out.logits) == 1
    head = model.heads[0]
    # Same batch -> same batch statistics: logits = classifier(BN(pre-BN feature)).
    torch.testing.assert_close(out.logits[0], head.classifier(head.bn(out.feats[0])))


def test_no_classifier_without_identities() -> None:
    model = build_model(ModelConfig(backbone=TINY)).train()
    assert model.heads[0].classifier is None
    out = model(images())
    assert out.logits == [] and out.feats[0].shape == (4, D)


@pytest.mark.parametrize("neck_feat", ["before", "after"])
def test_neck_feat(neck_feat: str) -> None:
    model = build_model(ModelConfig(backbone=TINY, neck_feat=neck_feat)).eval()
    bn = model.heads[0].bn
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 2.0)
    x = images(2)
    pre = model.branch_features(x)[0]
    expected = pre if neck_feat == "before" else bn(pre)
    out = model(x)
    torch.testing.assert_close(out, expected)
    # Not L2-normalised: evaluation does that.
    assert not torch.allclose(out.norm(dim=1), torch.ones(2))


# --- PASS part tokens ----------------------------------------------------------------------


def test_part_tokens_feature() -> None:
    model = build_model(ModelConfig(backbone=TINY, part_tokens=3, num_classes=4)).eval()
    vit = model.backbone
    assert vit.reg_token.shape == (1, 3, D)
    # No class (or part) slot in the position table: it covers the 128 patches only.
    assert vit.pos_embed.shape == (1, 128, D)
    assert model.feat_dim == 2 * D
    x = images(2)
    out = model(x)
    tokens = vit.forward_features(x)
    torch.testing.assert_close(out, torch.cat([tokens[:, 0], tokens[:, 1:4].mean(1)], dim=1))
    train_out = model.train()(x)
    assert train_out.feats[0].shape == (2, 2 * D) and train_out.logits[0].shape == (2, 4)
