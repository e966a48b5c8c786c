"""Patch embeddings plugged into timm's VisionTransformer through its `embed_layer` argument.

Building the embedding inside timm's constructor (rather than swapping it afterwards) lets
timm size `pos_embed` from our grid, so the position table always matches the tokens.
"""

from __future__ import annotations

import torch
from timm.layers import PatchEmbed
from torch import nn

from reidcli.models.config import PATCH_SIZE, patch_grid, token_grid


class OverlapPatchEmbed(PatchEmbed):
    """TransReID's overlapping patch embedding: Conv2d(kernel 16, stride s), no padding.

    The kernel stays 16x16 for every stride, so pretrained `patch_embed.proj` weights load
    unchanged; only the grid (and hence the position table) depends on the stride.
    """

    def __init__(self, *args, stride: int = PATCH_SIZE, **kwargs) -> None:
        if kwargs.get("dynamic_img_pad"):
            raise ValueError("overlapping patch embedding does not support dynamic padding")
        # A fixed input size is required: the position table is sized to one grid.
        kwargs["strict_img_size"] = True
        super().__init__(*args, **kwargs)
        self.stride = stride
        proj = self.proj
        self.proj = nn.Conv2d(
            proj.in_channels,
            proj.out_channels,
            kernel_size=self.patch_size,
            stride=stride,
            bias=proj.bias is not None,
            device=proj.weight.device,
            dtype=proj.weight.dtype,
        )
        self.grid_size = patch_grid(self.img_size, stride, kernel=self.patch_size[0])
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.stride if as_scalar else (self.stride, self.stride)

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        return patch_grid(img_size, self.stride, kernel=self.patch_size[0])


class IBN(nn.Module):
    """Instance-Batch Norm: InstanceNorm (affine) on the first half of the channels, BN on the rest.

    The attribute names `IN`/`BN` follow TransReID-SSL's checkpoints so their ICS weights
    load without renaming.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


class IcsPatchEmbed(nn.Module):
    """TransReID-SSL's ICS stem: a small IBN conv stem, then an 8x8 projection; total stride 16.

    conv7x7/s2(3->64) -> IBN -> ReLU -> conv3x3 -> IBN -> ReLU -> conv3x3 -> BN -> ReLU ->
    conv k8/s(stride/2) (64->D). At stride 16 the projection is k8/s8 as published; smaller even
    strides overlap the projection the same way the plain patch embedding does.
    """

    hidden = 64

    def __init__(
        self,
        img_size: tuple[int, int] | int = 224,
        patch_size: int | tuple[int, int] = PATCH_SIZE,
        in_chans: int = 3,
        embed_dim: int = 768,
        bias: bool = True,
        stride: int = PATCH_SIZE,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **unused: object,
    ) -> None:
        super().__init__()
        if unused.get("dynamic_img_pad"):
            raise ValueError("the ICS stem does not support dynamic padding")
        dd = {"device": device, "dtype": dtype}
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.patch_size = (PATCH_SIZE, PATCH_SIZE)
        self.stride = stride
        c = self.hidden
        # Index layout (0, 1, 3, 4, 6, 7) matches TransReID-SSL's `patch_embed.conv.*` keys.
        self.conv = nn.Sequential(
            nn.Conv2d(in_chans, c, kernel_size=7, stride=2, padding=3, bias=False, **dd),
            IBN(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, bias=False, **dd),
            IBN(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, bias=False, **dd),
            nn.BatchNorm2d(c, **dd),
            nn.ReLU(inplace=True),
        )
        half = PATCH_SIZE // 2
        self.proj = nn.Conv2d(c, embed_dim, kernel_size=half, stride=stride // 2, bias=bias, **dd)
        self.grid_size = self.dynamic_feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def feat_ratio(self, as_scalar: bool = True) -> int | tuple[int, int]:
        return self.stride if as_scalar else (self.stride, self.stride)

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        return token_grid(img_size, self.stride, stem="ics")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"input {tuple(x.shape[-2:])} does not match model size {self.img_size}"
            )
        x = self.proj(self.conv(x))
        return x.flatten(2).transpose(1, 2)
