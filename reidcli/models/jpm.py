"""Jigsaw Patch Module (TransReID): shift, shuffle and group the patch tokens into local branches.

One generic module for any number of groups: all groups go through the single shared local
branch (a copy of the last block + final norm) in one batched call.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def jpm_token_order(
    num_patches: int, shift: int, shuffle: int, exact_shift: bool = False
) -> torch.Tensor:
    """Patch indices after the shift and patch-shuffle operations (1-D LongTensor).

    Shift rotates the patch tokens left. The reference code builds the rotation as
    ``cat(x[:, shift:], x[:, 1:shift])`` with the CLS token at index 0, which moves
    shift-1 patches (4 for the default 5); the paper says `shift`. `exact_shift=False`
    reproduces the reference, `True` follows the paper.

    Shuffle with G groups is ``view(G, N/G).transpose`` - an interleave of G equal chunks.
    When N is not a multiple of G the reference pads with a copy of the second-to-last
    token; that rule is kept (repeated as often as needed) so any N works.
    """
    if num_patches < 1 or shift < 1 or shuffle < 1:
        raise ValueError("num_patches, shift and shuffle must be >= 1")
    rotate = (shift if exact_shift else shift - 1) % num_patches
    order = torch.roll(torch.arange(num_patches), -rotate)
    pad = (-num_patches) % shuffle
    if pad:
        order = torch.cat([order, order[-2:-1].repeat(pad)])
    return order.view(shuffle, -1).t().reshape(-1)


def jpm_groups(
    num_patches: int, shift: int, shuffle: int, groups: int, exact_shift: bool = False
) -> list[list[int]]:
    """Patch indices of each local group: contiguous chunks of N // groups; leftovers dropped."""
    order = jpm_token_order(num_patches, shift, shuffle, exact_shift)
    size = num_patches // groups
    return [order[g * size : (g + 1) * size].tolist() for g in range(groups)]


class JigsawPatchModule(nn.Module):
    """The local branches of JPM: one shared (block, norm) pair applied to every group.

    Each group's sequence is [CLS output of block L-1, its patch tokens]; the branch output's
    CLS token is that group's local feature. The branch is a deep copy of the backbone's last
    block and final norm; `sync_from` re-copies them after pretrained weights are loaded.
    """

    def __init__(
        self,
        block: nn.Module,
        norm: nn.Module,
        num_patches: int,
        *,
        groups: int = 4,
        shift: int = 5,
        shuffle: int = 2,
        exact_shift: bool = False,
        num_prefix_tokens: int = 1,
    ) -> None:
        super().__init__()
        self.block = copy.deepcopy(block)
        self.norm = copy.deepcopy(norm)
        self.groups = groups
        self.num_prefix_tokens = num_prefix_tokens
        self.group_size = num_patches // groups
        order = jpm_token_order(num_patches, shift, shuffle, exact_shift)
        used = order[: groups * self.group_size]
        # Not a parameter and not saved: it is a pure function of the config.
        self.register_buffer("order", used, persistent=False)

    @torch.no_grad()
    def sync_from(self, block: nn.Module, norm: nn.Module) -> None:
        """Re-initialise the local branch from (freshly loaded) backbone weights."""
        self.block.load_state_dict(block.state_dict())
        self.norm.load_state_dict(norm.state_dict())

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """tokens: (B, prefix + N, D) output of block L-1 -> list of `groups` (B, D) features."""
        b, _, d = tokens.shape
        cls = tokens[:, :1]
        patches = tokens[:, self.num_prefix_tokens :].index_select(1, self.order)
        patches = patches.view(b, self.groups, self.group_size, d).transpose(0, 1)
        # Groups are stacked on the batch axis: one call of the shared branch for all of them.
        seq = torch.cat([cls.unsqueeze(0).expand(self.groups, -1, -1, -1), patches], dim=2)
        out = self.norm(self.block(seq.reshape(self.groups * b, 1 + self.group_size, d)))
        return list(out[:, 0].view(self.groups, b, d).unbind(0))
