"""The ReID network: a backbone + optional SIE, JPM and PASS part tokens + BNNeck heads.

Token backbones (ViT, DeiT, DINOv2) run the TransReID token pipeline below; pooled backbones
(SOLIDER Swin, ResNet) expose `forward_features(x) -> (B, D)`, the one global feature that
goes to the BNNeck. `ModelConfig` rejects the token-only options for pooled backbones.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import nn

from reidcli.errors import ReidError
from reidcli.models.backbone import build_backbone
from reidcli.models.config import ModelConfig
from reidcli.models.heads import BNNeck
from reidcli.models.jpm import JigsawPatchModule
from reidcli.models.sie import SideInfoEmbedding


class ReidOutput(NamedTuple):
    """Training-mode output; index 0 is the global branch, then the JPM local branches.

    `feats` are pre-BN (for the triplet loss; post-BN with a frozen backbone), `logits` come
    from the post-BN features (ID loss); `logits` is empty when the model has no classifier.
    """

    logits: list[torch.Tensor]
    feats: list[torch.Tensor]


class ReidModel(nn.Module):
    """TransReID-style model.

    Parameter layout (the keys of `model.safetensors`):
      backbone.*   timm VisionTransformer (cls_token, reg_token = PASS parts or DINOv2
                   registers, pos_embed, patch_embed, blocks, norm); for Swin timm's Swin
                   names + semantic_embed_w/b; for ResNet timm/torchvision names without fc
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
        self.token_backbone = cfg.spec.tokens
        self.backbone_frozen = False
        if self.token_backbone:
            dim = self.backbone.embed_dim
            self.num_prefix_tokens = self.backbone.num_prefix_tokens
        else:
            dim = self.backbone.num_features
            self.num_prefix_tokens = 0
        self.embed_dim = dim
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

    def freeze_backbone(self) -> None:
        """Linear-probe mode: the backbone gets no gradients, runs under no_grad (no activations
        kept for backward) and stays in eval mode (no drop_path, BN statistics fixed)."""
        if self.sie is not None or self.jpm is not None:
            raise ReidError(
                "a frozen backbone trains only the BNNeck and classifier; SIE and JPM need "
                "gradients through the backbone (drop --sie/--jpm or --freeze-backbone)"
            )
        self.backbone.requires_grad_(False)
        self.backbone_frozen = True
        self.backbone.eval()

    def train(self, mode: bool = True) -> ReidModel:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

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
        if not self.token_backbone:
            raise ReidError(f"{self.cfg.backbone} is not a token backbone: it has no tokens")
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
        frozen = torch.no_grad() if self.backbone_frozen else contextlib.nullcontext()
        with frozen:
            if not self.token_backbone:
                return [self.backbone.forward_features(x)]
            return self._token_branches(x, camids, viewids)

    def _token_branches(
        self,
        x: torch.Tensor,
        camids: torch.Tensor | None,
        viewids: torch.Tensor | None,
    ) -> list[torch.Tensor]:
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
            if self.backbone_frozen:
                # Pre-BN features of a frozen backbone are constants: a triplet loss on them
                # could train nothing, so it sees the (trainable) post-BN features instead.
                feats = [head(f) for head, f in zip(self.heads, feats, strict=True)]
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
