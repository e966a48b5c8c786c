"""The ReID network: timm ViT backbone + optional SIE, JPM and PASS part tokens + BNNeck heads."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from reidcli.models.backbone import build_backbone
from reidcli.models.config import ModelConfig
from reidcli.models.heads import BNNeck
from reidcli.models.jpm import JigsawPatchModule
from reidcli.models.sie import SideInfoEmbedding


class ReidOutput(NamedTuple):
    """Training-mode output; index 0 is the global branch, then the JPM local branches.

    `feats` are pre-BN (for the triplet loss), `logits` come from the post-BN features (ID
    loss); `logits` is empty when the model has no classifier.
    """

    logits: list[torch.Tensor]
    feats: list[torch.Tensor]


class ReidModel(nn.Module):
    """TransReID-style model.

    Parameter layout (the keys of `model.safetensors`):
      backbone.*   timm VisionTransformer (cls_token, reg_token = PASS parts, pos_embed,
                   patch_embed, blocks, norm)
      sie.embed    SIE table (C*V, 1, D), only with SIE
      jpm.*        JPM's shared local branch (block + norm), only with JPM
      heads.{i}.*  BNNeck (+ classifier) per branch: 0 = global, 1..K = JPM groups

    With JPM the global branch *is* the backbone's last block and final norm: TransReID
    deep-copies them into a global branch and leaves the originals unused, which computes the
    same function but carries dead weights (and needs find_unused_parameters under DDP).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg)
        dim = self.backbone.embed_dim
        self.embed_dim = dim
        self.num_prefix_tokens = self.backbone.num_prefix_tokens
        self.sie: SideInfoEmbedding | None = None
        if cfg.sie_enabled:
            self.sie = SideInfoEmbedding(
                dim, cfg.num_cams, cfg.num_views, cfg.sie_camera, cfg.sie_view, cfg.sie_coef
            )
        self.jpm: JigsawPatchModule | None = None
        if cfg.jpm:
            self.jpm = JigsawPatchModule(
                self.backbone.blocks[-1],
                self.backbone.norm,
                cfg.num_patches,
                groups=cfg.jpm_groups,
                shift=cfg.jpm_shift,
                shuffle=cfg.jpm_shuffle,
                exact_shift=cfg.jpm_exact_shift,
                num_prefix_tokens=self.num_prefix_tokens,
            )
        branch_dim = dim * 2 if cfg.part_tokens else dim
        num_branches = 1 + (cfg.jpm_groups if cfg.jpm else 0)
        self.heads = nn.ModuleList(BNNeck(branch_dim, cfg.num_classes) for _ in range(num_branches))

    @property
    def feat_dim(self) -> int:
        """Dimension of the eval-mode (test) feature."""
        return self.heads[0].bn.num_features * len(self.heads)

    @property
    def num_branches(self) -> int:
        return len(self.heads)

    def sync_jpm(self) -> None:
        """Copy the backbone's last block + norm into JPM's local branch (after loading weights)."""
        if self.jpm is not None:
            self.jpm.sync_from(self.backbone.blocks[-1], self.backbone.norm)

    def tokens(
        self,
        x: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embedded token sequence (B, prefix + N, D) before the first block."""
        vit = self.backbone
        x = vit.patch_embed(x)
        # timm's own prefix-token + position-embedding logic (class slot or not, registers).
        x = vit._pos_embed(x)
        if self.sie is not None:
            # Added after the CLS token is prepended, so CLS (and PART tokens) get it too.
            x = x + self.sie(camids, viewids)
        x = vit.patch_drop(x)
        return vit.norm_pre(x)

    def branch_features(
        self,
        x: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Pre-BN feature of every branch: [global, local_1, ..., local_K]."""
        vit = self.backbone
        x = self.tokens(x, camids, viewids)
        if self.jpm is None:
            x = vit.norm(vit.blocks(x))
            return [self._pool(x)]
        for block in vit.blocks[:-1]:
            x = block(x)
        global_feat = vit.norm(vit.blocks[-1](x))[:, 0]
        return [global_feat, *self.jpm(x)]

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cfg.part_tokens:
            return x[:, 0]
        parts = x[:, 1 : 1 + self.cfg.part_tokens].mean(dim=1)
        return torch.cat([x[:, 0], parts], dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
    ) -> ReidOutput | torch.Tensor:
        """Train mode: `ReidOutput`. Eval mode: the test feature (B, feat_dim), not normalised.

        The JPM test feature is concat[g, l_1/K, ..., l_K/K] (the reference divides by 4 with
        its 4 groups); `neck_feat` picks pre-BN ("before") or post-BN ("after") features.
        """
        feats = self.branch_features(x, camids, viewids)
        if self.training:
            logits = []
            if self.heads[0].classifier is not None:
                logits = [head.logits(f) for head, f in zip(self.heads, feats, strict=True)]
            return ReidOutput(logits=logits, feats=feats)
        if self.cfg.neck_feat == "after":
            feats = [head(f) for head, f in zip(self.heads, feats, strict=True)]
        if len(feats) == 1:
            return feats[0]
        k = len(feats) - 1
        return torch.cat([feats[0], *(f / k for f in feats[1:])], dim=1)


def unwrap(model: torch.nn.Module) -> ReidModel:
    """The bare `ReidModel` inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers.

    Saving the bare model keeps the file's keys free of wrapper prefixes.
    """
    while not isinstance(model, ReidModel):
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected a ReidModel, got {type(model).__name__}")
        model = inner
    return model


def build_model(cfg: ModelConfig) -> ReidModel:
    """A randomly initialised model for `cfg`; load weights with `load_pretrained`."""
    return ReidModel(cfg)
