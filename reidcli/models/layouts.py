"""Reading checkpoints and mapping their layouts onto timm ViT key names.

Every supported file is turned into a `Source`: backbone tensors named as in timm's
VisionTransformer (`cls_token`, `reg_token`, `pos_embed`, `patch_embed.*`, `blocks.*`,
`norm.*`), ReID extras named as in `ReidModel` (`heads.*`, `sie.*`, `jpm.*`), the keys that
were deliberately dropped, and what is known about the position grid. Shapes are not
checked here; `pretrained.load_pretrained` fits the source to a model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcli.errors import CheckpointError
from reidcli.models.config import ModelConfig, token_grid
from reidcli.models.weights_file import read_weights, stored_config
from reidcli.runtime.rundir import CONFIG_NAME, WEIGHTS_NAME

EXTRA_PREFIXES = ("heads.", "sie.", "jpm.")
# Keys that belong to other tasks (ImageNet/DINO heads, MIM mask embeddings): never loaded.
DROPPED_PREFIXES = ("head.", "head_dist.", "pre_logits.", "masked_embed", "mask_token", "fc_norm.")


@dataclass
class Source:
    layout: str
    backbone: dict[str, torch.Tensor]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    grid: tuple[int, int] | None = None
    """Position grid of the checkpoint when its metadata says so."""
    prefix_slots: int | None = None
    """Number of non-patch slots at the start of `pos_embed`, when known."""
    notes: list[str] = field(default_factory=list)


TIMM_HUB = "timm"


def read_source(path: str | Path, timm_name: str | None = None) -> Source:
    """Read any supported checkpoint and map it to timm/ReidModel key names.

    `path == "timm"` downloads timm's own pretrained weights for `timm_name` (needs network
    access or a filled Hugging Face cache).
    """
    if str(path) == TIMM_HUB:
        return _read_timm_hub(timm_name)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        return _read_run_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix == ".npz":
        return _read_npz(path)
    return _from_object(_torch_load(path), path)


def _read_timm_hub(timm_name: str | None) -> Source:
    if timm_name is None:
        raise CheckpointError("timm's pretrained weights exist only for the standard backbones")
    import timm

    try:
        vit = timm.create_model(timm_name, pretrained=True, num_classes=0)
    except Exception as exc:  # network, cache and hub errors alike
        raise CheckpointError(f"cannot fetch timm's pretrained {timm_name}: {exc}") from exc
    src = _from_flat(vit.state_dict(), f"timm-hub:{timm_name}")
    src.grid = tuple(vit.patch_embed.grid_size)
    src.prefix_slots = 0 if vit.no_embed_class else vit.num_prefix_tokens
    return src


def _read_run_dir(path: Path) -> Source:
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(
            f"{path} is a folder without {WEIGHTS_NAME}: not a reidcli run directory"
        )
    config: dict[str, Any] = {}
    if (path / CONFIG_NAME).is_file():
        try:
            config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path / CONFIG_NAME} is not valid JSON: {exc}") from exc
    return _from_reidcli(read_weights(weights)[0], config, "reidcli-run")


def _read_safetensors(path: Path) -> Source:
    state, meta = read_weights(path)
    config = stored_config(meta, path)
    if config is not None:
        return _from_reidcli(state, config, "reidcli")
    return _from_flat(state, "safetensors")


def _from_reidcli(state: dict[str, torch.Tensor], config: dict[str, Any], layout: str) -> Source:
    """Our own weights (fine-tuning or pre-training runs) plus the model.json beside them."""
    src = _from_flat(state, layout)
    try:
        cfg: ModelConfig | None = ModelConfig.from_dict(config) if config else None
    except (ValueError, TypeError):
        cfg = None
    if cfg is not None:
        if cfg.spec.tokens:
            src.grid = cfg.grid
            src.prefix_slots = 0 if (cfg.part_tokens or cfg.spec.registers) else 1
    elif "img_size" in config:
        stem = config.get("stem", "patch")
        src.grid = token_grid(tuple(config["img_size"]), int(config.get("stride", 16)), stem)
        src.prefix_slots = 0 if config.get("part_tokens", 0) else 1
    return src


def _torch_load(path: Path) -> Any:
    # DINO-style files pickle their argparse.Namespace `args`; allow exactly that class.
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    allow = safe_globals([argparse.Namespace]) if safe_globals else contextlib.nullcontext()
    try:
        with allow:
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure (pickle, zip, I/O) is reported the same way
        raise CheckpointError(
            f"cannot read {path} with torch.load(weights_only=True): {exc}. Only tensors, "
            f"containers and argparse.Namespace are accepted; re-save the weights as a plain "
            f"state dict or safetensors"
        ) from exc


def _from_object(obj: Any, path: Path) -> Source:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    grid = _grid_from_args(obj.get("args"))
    if isinstance(obj.get("teacher"), dict):
        src = _from_flat(obj["teacher"], "dino-teacher")
    elif isinstance(obj.get("student"), dict):
        src = _from_flat(obj["student"], "dino-student")
        src.notes.append("no teacher in the DINO checkpoint: using the student backbone")
    elif isinstance(obj.get("state_dict"), dict):
        src = _from_flat(obj["state_dict"], "ibot")
    elif isinstance(obj.get("model"), dict):
        src = _from_flat(obj["model"], "timm")
    else:
        src = _from_flat(obj, "timm")
    if src.grid is None:
        src.grid = grid
    return src


def _grid_from_args(args: Any) -> tuple[int, int] | None:
    """Pre-training grid from DINO/PASS `args` (`--height/--width/--patch_size`), if present."""
    h, w = getattr(args, "height", None), getattr(args, "width", None)
    p = getattr(args, "patch_size", 16)
    if isinstance(h, int) and isinstance(w, int) and isinstance(p, int) and p > 0:
        return h // p, w // p
    return None


def _from_flat(state: dict[str, Any], layout: str) -> Source:
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("base.") for k in state):
        return _from_transreid(state)
    dropped: list[str] = []
    if any(k.startswith("backbone.") for k in state):
        inner: dict[str, torch.Tensor] = {}
        extras: dict[str, torch.Tensor] = {}
        for k, v in state.items():
            if k.startswith("backbone."):
                inner[k.removeprefix("backbone.")] = v
            elif k.startswith(EXTRA_PREFIXES):
                extras[k] = v
            else:
                dropped.append(k)
        state = inner
    else:
        extras = {}
    backbone: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith(DROPPED_PREFIXES):
            dropped.append(k)
        else:
            backbone[k] = v
    src = Source(layout=layout, backbone=backbone, extras=extras, dropped=dropped)
    _fold_pass_tokens(src)
    _map_dinov2_meta(src)
    return src


_META_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.(.*)$")
_META_SWIGLU = (("mlp.w12.", "mlp.fc1."), ("mlp.w3.", "mlp.fc2."))


def _map_dinov2_meta(src: Source) -> None:
    """Meta's DINOv2 names -> timm's.

    Meta's state dicts (`dinov2_vit*14*_pretrain.pth`, and the `teacher` of its training
    checkpoints) differ from timm's in: `register_tokens` (timm `reg_token`), `mask_token`
    (iBOT's, dropped), chunked blocks `blocks.{chunk}.{i}.*` (timm `blocks.{i}.*`, i global)
    and the giant model's SwiGLU `mlp.w12` / `mlp.w3` (timm `mlp.fc1` / `mlp.fc2`). Its
    `pos_embed` always has one class slot (1 + 37*37 = 1370 at 518x518) and no register slots;
    LayerScale (`ls1.gamma`, `ls2.gamma`) is named as in timm.
    """
    bb = src.backbone
    meta = "register_tokens" in bb or (
        "mask_token" in src.dropped and any(k.endswith(".ls1.gamma") for k in bb)
    )
    if not meta:
        return
    renamed: dict[str, torch.Tensor] = {}
    for key, value in bb.items():
        if key == "register_tokens":
            key = "reg_token"
        elif m := _META_CHUNKED.match(key):
            key = f"blocks.{m.group(1)}.{m.group(2)}"
        for old, new in _META_SWIGLU:
            key = key.replace(old, new)
        renamed[key] = value
    src.backbone = renamed
    src.layout = "dinov2-meta" if src.layout == "timm" else f"{src.layout}+dinov2-meta"
    src.prefix_slots = 1
    src.notes.append("Meta DINOv2 names mapped to timm's (registers, chunked blocks, SwiGLU)")


_PASS_PART = re.compile(r"^part_token(\d+)$")


def _fold_pass_tokens(src: Source) -> None:
    """PASS's own names -> timm's: `part_token{k}` (+ `part{k}_pos`) -> `reg_token[:, k-1]`.

    PASS adds a learned position vector to each prefix token; token + position is one
    constant, so the position is folded into the token (exact). Its `pos_embed` has no
    class slot.
    """
    bb = src.backbone
    parts = sorted(int(m.group(1)) for k in bb if (m := _PASS_PART.match(k)))
    if not parts:
        return
    if parts != list(range(1, len(parts) + 1)):
        raise CheckpointError(f"PASS part tokens are not numbered 1..n: {parts}")
    tokens = []
    for k in parts:
        tok = bb.pop(f"part_token{k}")
        pos = bb.pop(f"part{k}_pos", None)
        tokens.append(tok if pos is None else tok + pos)
    bb["reg_token"] = torch.cat(tokens, dim=1)
    if "cls_pos" in bb:
        cls_pos = bb.pop("cls_pos")
        if "cls_token" in bb:
            bb["cls_token"] = bb["cls_token"] + cls_pos
    src.layout += "+pass"
    src.prefix_slots = 0
    src.notes.append(f"PASS: {len(parts)} part tokens -> reg_token, position vectors folded in")


_TRANSREID_RENAMES = (
    (re.compile(r"^bottleneck\.(.*)$"), r"heads.0.bn.\1"),
    (re.compile(r"^bottleneck_(\d+)\.(.*)$"), r"heads.\1.bn.\2"),
    (re.compile(r"^classifier\.(.*)$"), r"heads.0.classifier.\1"),
    (re.compile(r"^classifier_(\d+)\.(.*)$"), r"heads.\1.classifier.\2"),
    (re.compile(r"^b2\.0\.(.*)$"), r"jpm.block.\1"),
    (re.compile(r"^b2\.1\.(.*)$"), r"jpm.norm.\1"),
    (re.compile(r"^base\.sie_embed$"), r"sie.embed"),
)


def _from_transreid(state: dict[str, torch.Tensor]) -> Source:
    """TransReID's checkpoints: `base.*` ViT, `b1` (global) / `b2` (local) JPM branches, necks.

    With JPM, TransReID's global branch `b1` = (last block, norm) copies; the originals in
    `base` are unused there, so `b1` replaces them (our global branch is the backbone's own).
    """
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^base\.blocks\.(\d+)\.", k))}
    last = max(blocks) if blocks else 0
    has_b1 = any(k.startswith("b1.") for k in state)
    src = Source(layout="transreid", backbone={})
    for k, v in state.items():
        if k.startswith("b1.0."):
            src.backbone[f"blocks.{last}." + k.removeprefix("b1.0.")] = v
        elif k.startswith("b1.1."):
            src.backbone["norm." + k.removeprefix("b1.1.")] = v
        elif has_b1 and (k.startswith(f"base.blocks.{last}.") or k.startswith("base.norm.")):
            src.dropped.append(k)
        elif k == "base.sie_embed" or not k.startswith("base."):
            for pattern, repl in _TRANSREID_RENAMES:
                if pattern.match(k):
                    src.extras[pattern.sub(repl, k)] = v
                    break
            else:
                src.dropped.append(k)
        else:
            name = k.removeprefix("base.")
            if name.startswith(DROPPED_PREFIXES) or name.startswith("fc."):
                src.dropped.append(k)
            else:
                src.backbone[name] = v
    return src


def _read_npz(path: Path) -> Source:
    """Google's ViT .npz (big_vision / AugReg), converted by timm's own loader."""
    from timm.models.vision_transformer import VisionTransformer

    with np.load(path) as w:
        names = set(w.files)
        prefix = next(
            (p for p in ("", "opt/target/", "params/") if f"{p}embedding/kernel" in names), None
        )
        if prefix is None or f"{prefix}cls" not in names:
            raise CheckpointError(f"{path}: not a Google ViT .npz (no embedding/kernel or cls)")
        kernel = w[f"{prefix}embedding/kernel"].shape  # (kh, kw, in, D)
        pos_len = w[f"{prefix}Transformer/posembed_input/pos_embedding"].shape[1]
        q_kernel = w[
            f"{prefix}Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"
        ]
        hidden = w[f"{prefix}Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel"].shape[1]
    depth = len({m.group(1) for n in names if (m := re.search(r"encoderblock_(\d+)/", n))})
    side = math.isqrt(pos_len - 1)
    if side * side != pos_len - 1:
        raise CheckpointError(
            f"{path}: position table of {pos_len} tokens is not CLS + a square grid"
        )
    dim, heads = kernel[3], q_kernel.shape[1]
    vit = VisionTransformer(
        img_size=side * kernel[0],
        patch_size=kernel[0],
        in_chans=kernel[2],
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=hidden / dim,
        num_classes=0,
        weight_init="skip",
    )
    vit.load_pretrained(str(path))
    src = _from_flat(vit.state_dict(), "google-npz")
    src.grid, src.prefix_slots = (side, side), 1
    return src
