"""Student / teacher network: a timm ViT backbone with DINO heads, run once per crop size.

The backbone is the `backbone` of a `reidcli.models.ReidModel` (a timm VisionTransformer);
only it and the projection heads take part in pre-training. The token pipeline is written
out here rather than calling `forward_features` because pre-training needs three things the
plain forward cannot do: run at a crop size other than the model's (local crops, position
table resampled), replace masked patch embeddings by a learned token before positions are
added (MIM), and give a PASS local crop only its own region's [PART] token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from reidcli.ssl.heads import DINOHead


@contextlib.contextmanager
def _input_size(patch_embed: nn.Module, size: tuple[int, int]) -> Iterator[None]:
    # The patch embeddings check inputs against their fixed `img_size` (the position table
    # is sized for it); here the table is resampled, so other sizes are legitimate.
    saved = patch_embed.img_size
    patch_embed.img_size = size
    try:
        yield
    finally:
        patch_embed.img_size = saved


def token_grid(vit: VisionTransformer, size: tuple[int, int]) -> tuple[int, int]:
    return tuple(vit.patch_embed.dynamic_feat_size(size))  # type: ignore[return-value]


def crop_pos_embed(
    pos: torch.Tensor, grid: tuple[int, int], old_grid: tuple[int, int], num_prefix: int
) -> torch.Tensor:
    """The (1, prefix + gh*gw, D) position table for a crop with a `grid` token grid.

    As DINO's `interpolate_pos_encoding` (also TransReID-SSL's and PASS's): bicubic with
    `scale_factor = (g + 0.1) / G` per axis rather than the target size, so the sampled
    positions are those the published checkpoints were trained with (a size-based resample,
    e.g. timm's `resample_abs_pos_embed`, differs by up to ~0.02 on a std-0.02 table).
    Prefix slots ([CLS], [PART]) are kept as they are.
    """
    (gh, gw), (oh, ow) = grid, old_grid
    prefix, table = pos[:, :num_prefix], pos[:, num_prefix:]
    dim = table.shape[-1]
    table = F.interpolate(
        table.reshape(1, oh, ow, dim).permute(0, 3, 1, 2),
        scale_factor=((gh + 0.1) / oh, (gw + 0.1) / ow),
        mode="bicubic",
    )
    if tuple(table.shape[-2:]) != (gh, gw):
        raise ValueError(f"position table resampled to {tuple(table.shape[-2:])}, not {grid}")
    table = table.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
    return torch.cat([prefix, table], dim=1)


def vit_tokens(
    vit: VisionTransformer,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
    part_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Final-norm token outputs (B, prefix + N, D).

    mask: (B, gh, gw) bool, True = replace that patch embedding by `mask_token`.
    part_index: (B,) long; when given each row carries [CLS, PART_part_index[b]] instead of
    all the register ([PART]) tokens.
    """
    size = (int(x.shape[-2]), int(x.shape[-1]))
    with _input_size(vit.patch_embed, size):
        patches = vit.patch_embed(x)
    if patches.ndim == 4:
        patches = patches.flatten(1, 2)
    b = patches.shape[0]
    if mask is not None:
        if mask_token is None:
            raise ValueError("a mask needs a mask token")
        m = mask.flatten(1).unsqueeze(-1)
        patches = torch.where(m, mask_token.to(patches.dtype).expand_as(patches), patches)

    grid = token_grid(vit, size)
    pos = vit.pos_embed
    if pos is not None and grid != tuple(vit.patch_embed.grid_size):
        pos = crop_pos_embed(
            pos, grid, tuple(vit.patch_embed.grid_size),
            0 if vit.no_embed_class else vit.num_prefix_tokens,
        )

    prefix = []
    if vit.cls_token is not None:
        prefix.append(vit.cls_token.expand(b, -1, -1))
    if vit.reg_token is not None:
        if part_index is None:
            prefix.append(vit.reg_token.expand(b, -1, -1))
        else:
            prefix.append(vit.reg_token[0, part_index].unsqueeze(1))
    if pos is None:
        tokens = torch.cat([*prefix, patches], dim=1)
    elif vit.no_embed_class:
        tokens = torch.cat([*prefix, patches + pos], dim=1)
    else:
        if part_index is not None:
            raise ValueError("per-view [PART] tokens need a backbone with no_embed_class")
        tokens = torch.cat([*prefix, patches], dim=1) + pos
    tokens = vit.norm_pre(vit.patch_drop(vit.pos_drop(tokens)))
    return vit.norm(vit.blocks(tokens))


@dataclass
class NetOutput:
    """Head outputs, one (B, K) tensor per view; patches: one (B, N, K) per global view."""

    cls: list[torch.Tensor]
    patches: list[torch.Tensor] = field(default_factory=list)
    parts: list[list[torch.Tensor]] = field(default_factory=list)
    """parts[k]: [PART]_k outputs of the global views, then of region k's local views."""


class SSLNetwork(nn.Module):
    """Backbone + DINO head (+ [PART] heads for PASS, + mask token for MIM).

    `forward(views, ...)` groups consecutive views of equal size and runs the backbone once
    per group, so 2 globals + 8 locals cost two backbone calls, as in DINO.
    """

    def __init__(
        self,
        backbone: VisionTransformer,
        out_dim: int,
        *,
        mim: bool = False,
        parts: int = 0,
        part_crops: int = 0,
        head_hidden: int = 2048,
        head_bottleneck: int = 256,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        dim = backbone.embed_dim
        self.backbone = backbone
        self.head = DINOHead(
            dim, out_dim, head_hidden, head_bottleneck, norm_last_layer=norm_last_layer
        )
        self.mim = mim
        self.mask_token = nn.Parameter(torch.zeros(1, dim)) if mim else None
        self.parts = parts
        self.part_crops = part_crops
        if parts:
            if backbone.num_reg_tokens != parts:
                raise ValueError(
                    f"PASS with {parts} parts needs a backbone with {parts} [PART] tokens, "
                    f"it has {backbone.num_reg_tokens}"
                )
            self.part_heads = nn.ModuleList(
                DINOHead(dim, out_dim, head_hidden, head_bottleneck,
                         norm_last_layer=norm_last_layer)
                for _ in range(parts)
            )

    def last_layer_parameters(self) -> list[nn.Parameter]:
        params = self.head.last_layer_parameters()
        if self.parts:
            for h in self.part_heads:
                params += h.last_layer_parameters()
        return params

    def forward(
        self, views: list[torch.Tensor], masks: list[torch.Tensor] | None = None,
        n_global: int = 2,
    ) -> NetOutput:
        """views[:n_global] are global crops (masked by `masks` if given), the rest local."""
        groups = _size_groups(views)
        cls_tokens: list[torch.Tensor] = []
        patch_tokens: list[torch.Tensor] = []
        part_tokens: list[list[torch.Tensor]] = [[] for _ in range(self.parts)]
        for lo, hi in groups:
            x = torch.cat(views[lo:hi])
            b = views[lo].shape[0]
            is_global = hi <= n_global
            if lo < n_global < hi:
                raise ValueError("global and local views must differ in size")
            mask = torch.cat(masks[lo:hi]) if (is_global and masks) else None
            part_index = None
            if self.parts and not is_global:
                regions = [(v - n_global) // self.part_crops for v in range(lo, hi)]
                part_index = torch.tensor(regions, device=x.device).repeat_interleave(b)
            out = vit_tokens(self.backbone, x, mask, self.mask_token, part_index)
            cls_tokens.append(out[:, 0])
            prefix = self.backbone.num_prefix_tokens if part_index is None else 2
            if is_global and self.mim:
                patch_tokens.append(out[:, prefix:])
            if self.parts:
                if is_global:
                    for k in range(self.parts):
                        part_tokens[k].append(out[:, 1 + k])
                else:
                    for v, region in zip(range(lo, hi), regions, strict=True):
                        row = (v - lo) * b
                        part_tokens[region].append(out[row : row + b, 1])
        n_views = len(views)
        result = NetOutput(cls=list(self.head(torch.cat(cls_tokens)).chunk(n_views)))
        if patch_tokens:
            patches = self.head(torch.cat(patch_tokens))
            result.patches = list(patches.chunk(n_global))
        for k in range(self.parts):
            stacked = torch.cat(part_tokens[k])
            result.parts.append(list(self.part_heads[k](stacked).split(views[0].shape[0])))
        return result


def _size_groups(views: list[torch.Tensor]) -> list[tuple[int, int]]:
    """[lo, hi) ranges of consecutive views with the same spatial size."""
    groups: list[tuple[int, int]] = []
    lo = 0
    for i in range(1, len(views) + 1):
        if i == len(views) or views[i].shape[-2:] != views[lo].shape[-2:]:
            groups.append((lo, i))
            lo = i
    return groups
