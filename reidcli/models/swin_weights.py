"""Fitting Swin checkpoints to `SemanticSwin`: SOLIDER / mmseg names, Microsoft's, timm's.

Layouts (recognised from the keys, after `layouts.read_source` removed `backbone.`/`module.`):
- timm: `layers.{i}.downsample` at the START of stage i (i >= 1), as the model itself.
- SOLIDER (mmseg/mmdet-style Swin, also inside `{'teacher': ...}` checkpoints):
  `patch_embed.projection`, `stages.{i}.blocks.{j}.attn.w_msa.*`, `ffn.layers.0.0` / `ffn.layers.1`,
  `stages.{i}.downsample` at the END of stage i, `norm{k}` per output stage, `semantic_embed_w/b`.
  Its patch merging gathers the 2x2 neighbourhood with `nn.Unfold` (channel-major: c*4 + 2*dy
  + dx), timm concatenates (dx, dy, c) blocks, so merge weights are permuted (exact).
- Microsoft's original Swin: `layers.{i}.downsample` at the END of stage i, timm's channel order.

Relative-position bias tables of another window size are resized with timm's
`resize_rel_pos_bias_table` (the interpolation Swin uses for window changes); the index and
attention-mask buffers are recomputed by the model, so checkpoint copies are dropped.
"""

from __future__ import annotations

import re

import torch
from timm.layers import resize_rel_pos_bias_table

from reidcli.models.swin import SemanticSwin

_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask")
_STAGE_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$")
_STAGE_DOWN = re.compile(r"^stages\.(\d+)\.downsample\.(.*)$")
_LAYER_DOWN = re.compile(r"^layers\.(\d+)\.downsample\.(.*)$")
_OUT_NORM = re.compile(r"^norm(\d+)\.(.*)$")
_SEMANTIC = re.compile(r"^semantic_embed_([wb])\.(\d+)\.(.*)$")
_BLOCK_RENAMES = (
    ("attn.w_msa.", "attn."),
    ("ffn.layers.0.0.", "mlp.fc1."),
    ("ffn.layers.1.", "mlp.fc2."),
)


def unfold_to_timm(value: torch.Tensor) -> torch.Tensor:
    """Patch-merging weight (out, 4C) or norm (4C,) from Unfold order (c, dy, dx) to timm's
    (dx, dy, c)."""
    if value.ndim == 2:
        out, four_c = value.shape
        return value.reshape(out, four_c // 4, 2, 2).permute(0, 3, 2, 1).reshape(out, four_c)
    return value.reshape(-1, 2, 2).permute(2, 1, 0).reshape(-1)


def is_solider_layout(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(("stages.", "patch_embed.projection.")) for k in state)


def to_timm_names(
    state: dict[str, torch.Tensor], num_stages: int
) -> tuple[dict[str, torch.Tensor], list[str], list[str], str]:
    """(state in SemanticSwin names, dropped keys, notes, layout name)."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    notes: list[str] = []
    solider = is_solider_layout(state)
    # Microsoft's layout merges at the end of a stage: stage 0 has a downsample there.
    microsoft = not solider and any(k.startswith("layers.0.downsample.") for k in state)
    last = num_stages - 1
    for key, value in state.items():
        if key.endswith(_BUFFERS):
            dropped.append(key)
            continue
        if solider:
            new = _solider_key(key, last)
            if new is None:
                dropped.append(key)
                continue
            if _STAGE_DOWN.match(key):
                value = unfold_to_timm(value)
            out[new] = value
        elif microsoft and (m := _LAYER_DOWN.match(key)):
            out[f"layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}"] = value
        else:
            out[key] = value
    if solider:
        notes.append("SOLIDER/mmseg Swin names mapped to timm's; patch-merging channels reordered")
        dead = [k for k in dropped if (m := _SEMANTIC.match(k)) and int(m.group(2)) >= last]
        if dead:
            notes.append(
                "the semantic controller after the last stage is dropped: SOLIDER computes it but "
                "never uses its output"
            )
    layout = "solider-swin" if solider else ("swin-microsoft" if microsoft else "timm-swin")
    return out, dropped, notes, layout


def _solider_key(key: str, last: int) -> str | None:
    if key.startswith("patch_embed.projection."):
        return "patch_embed.proj." + key.removeprefix("patch_embed.projection.")
    if key.startswith("patch_embed.norm."):
        return key
    if m := _STAGE_BLOCK.match(key):
        rest = m.group(3)
        for old, new in _BLOCK_RENAMES:
            if rest.startswith(old):
                rest = new + rest.removeprefix(old)
                break
        return f"layers.{m.group(1)}.blocks.{m.group(2)}.{rest}"
    if m := _STAGE_DOWN.match(key):
        return f"layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}"
    if m := _OUT_NORM.match(key):
        # Only the last stage's output norm feeds the descriptor.
        return f"norm.{m.group(2)}" if int(m.group(1)) == last else None
    if m := _SEMANTIC.match(key):
        return key if int(m.group(2)) < last else None
    return key


def fit_swin_state(
    swin: SemanticSwin, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], list[str], list[str], list[str], str]:
    """Map and resize a Swin checkpoint for `swin`.

    Returns (state, dropped, resized keys, notes, layout). A checkpoint without a semantic
    controller (ImageNet Swin) gets the model's identity controller, said in a note.
    """
    mapped, dropped, notes, layout = to_timm_names(state, len(swin.layers))
    own = swin.state_dict()
    resized: list[str] = []
    for key, value in list(mapped.items()):
        if not key.endswith("relative_position_bias_table") or key not in own:
            continue
        target = own[key]
        if value.shape != target.shape and value.ndim == 2 and value.shape[1] == target.shape[1]:
            attn = swin.get_submodule(key.rsplit(".", 1)[0])
            window = tuple(int(w) for w in attn.window_size)
            mapped[key] = resize_rel_pos_bias_table(
                value, new_window_size=window, new_bias_shape=tuple(target.shape)
            )
            resized.append(key)
    if resized:
        notes.append(
            f"{len(resized)} relative-position bias tables resized to window "
            f"{swin.layers[0].blocks[0].attn.window_size}"
        )
    if not any(k.startswith("semantic_embed_") for k in mapped):
        for key, value in own.items():
            if key.startswith("semantic_embed_"):
                mapped[key] = value
        notes.append(
            "no semantic controller in the checkpoint: it starts as the identity, so "
            "semantic_weight has no effect until it is trained"
        )
    return mapped, dropped, resized, notes, layout
