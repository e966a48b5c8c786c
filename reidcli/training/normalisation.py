"""The normalisation a `--pretrained` reidcli export was trained with, and the warning when
the recipe asks for another."""

from __future__ import annotations

import logging
import math
from typing import Any

from reidcli.errors import CheckpointError
from reidcli.training.config import FinetuneConfig

log = logging.getLogger(__name__)


def pretrained_normalisation(cfg: FinetuneConfig) -> tuple[Any, Any]:
    """(mean, std) a reidcli export given as --pretrained was trained with, else (None, None).

    A model pre-trained by `reid pretrain` saw ImageNet statistics; fine-tuning it with the
    backbone's default 0.5/0.5 would shift every input. The export may be named by its run
    directory or by a file in it (`export_config`). Explicit --mean/--std (or a recipe's)
    still win, with a warning when they differ from the checkpoint's.
    """
    if not cfg.pretrained:
        return None, None
    from reidcli.models.checkpoint import export_config

    try:
        saved = export_config(cfg.pretrained)
    except CheckpointError as err:
        # The weights may still load (load_pretrained tolerates an unreadable config).
        log.warning("no normalisation from %s (%s); using the recipe's or the backbone's",
                    cfg.pretrained, err)
        return None, None
    if saved is None:
        return None, None
    ours = (cfg.mean or saved.mean, cfg.std or saved.std)
    if not all(_close(a, b) for a, b in zip(ours, (saved.mean, saved.std), strict=True)):
        log.warning(
            "normalisation mean %s std %s differs from the one %s was trained with (mean %s "
            "std %s); remove mean/std from the recipe or command line to use the checkpoint's",
            _fmt(ours[0]), _fmt(ours[1]), cfg.pretrained, _fmt(saved.mean), _fmt(saved.std),
        )
    return saved.mean, saved.std


def _close(a: Any, b: Any) -> bool:
    return all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
