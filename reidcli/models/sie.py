"""Side Information Embedding (SIE): a learned vector per camera/view added to every token."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from reidcli.errors import ReidError


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)
    return bool(is_compiling and is_compiling()) or _tracing()


def _tracing() -> bool:
    """Inside an ONNX export / jit trace, where a branch on data would be frozen."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class SideInfoEmbedding(nn.Module):
    """One table of shape (rows, 1, D) indexed by ``cam * V + view``, scaled by `coef`.

    rows = C (camera only), V (view only) or C*V (both), with C/V taken from the model
    config rather than from whichever dataset happens to be loaded. The reference code
    created its table when a count was > 1 but used it when > 0 and was off by one when both
    were on; here the table exists exactly when the option is on and every index is checked.
    """

    def __init__(
        self,
        dim: int,
        num_cams: int,
        num_views: int,
        use_camera: bool,
        use_view: bool,
        coef: float = 3.0,
    ) -> None:
        super().__init__()
        if not (use_camera or use_view):
            raise ValueError("SIE needs the camera, the view, or both")
        self.num_cams = num_cams if use_camera else 1
        self.num_views = num_views if use_view else 1
        self.use_camera = use_camera
        self.use_view = use_view
        self.coef = coef
        self.embed = nn.Parameter(torch.zeros(self.num_cams * self.num_views, 1, dim))
        trunc_normal_(self.embed, std=0.02)

    def index(self, camids: torch.Tensor | None, viewids: torch.Tensor | None) -> torch.Tensor:
        """Row of the table for each sample: ``cam * V + view``."""
        cam = self._ids(camids, "camera", self.num_cams) if self.use_camera else None
        view = self._ids(viewids, "view", self.num_views) if self.use_view else None
        if cam is not None and view is not None:
            return cam * self.num_views + view
        return cam if cam is not None else view  # type: ignore[return-value]

    def forward(self, camids: torch.Tensor | None, viewids: torch.Tensor | None) -> torch.Tensor:
        """(B, 1, D) embeddings, already multiplied by `coef`, to add to all tokens.

        An id of -1 means "unknown" (e.g. `reid extract --images` on a folder without camera
        names): that sample gets the mean embedding over the unknown axis, the neutral choice
        that favours no camera/view over the others.
        """
        cam = self._ids(camids, "camera", self.num_cams) if self.use_camera else None
        view = self._ids(viewids, "view", self.num_views) if self.use_view else None
        # A traced graph must serve known and unknown ids alike: it always takes the general
        # path, which gives the very same rows for known ids.
        unknown = _tracing() or any(ids is not None and bool((ids < 0).any())
                                    for ids in (cam, view))
        if not unknown:
            return self.coef * self.embed[self.index(camids, viewids)]
        c, v = self.num_cams, self.num_views
        table = self.embed.view(c, v, 1, -1)
        table = torch.cat([table, table.mean(0, keepdim=True)], 0)
        table = torch.cat([table, table.mean(1, keepdim=True)], 1)
        b = (cam if cam is not None else view).shape[0]  # type: ignore[union-attr]
        zeros = torch.zeros(b, dtype=torch.long, device=self.embed.device)
        ci = zeros if cam is None else torch.where(cam < 0, c, cam)
        vi = zeros if view is None else torch.where(view < 0, v, view)
        return self.coef * table[ci, vi]

    def _ids(self, ids: torch.Tensor | None, what: str, count: int) -> torch.Tensor:
        if ids is None:
            raise ReidError(
                f"the model uses SIE with {what} ids, but none were given: pass {what} ids "
                f"(0-based) with every batch"
            )
        ids = torch.as_tensor(ids, device=self.embed.device).long().reshape(-1)
        # One host sync per batch buys a readable message instead of a CUDA device assert.
        if ids.numel() and not _compiling():
            lo, hi = int(ids.min()), int(ids.max())
            if lo < -1 or hi >= count:
                raise ReidError(
                    f"{what} id out of range [0, {count - 1}] (got {lo}..{hi}; -1 = unknown): "
                    f"the SIE table was built for {count} {what}s"
                )
        return ids
