"""Self-supervised pre-training (DINO, DINO+MIM, PASS): `pretrain(PretrainConfig)`.

Import light pieces from their modules; `pretrain` is imported lazily so that importing
`reidcli.ssl` does not pull in the data and model layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reidcli.ssl.config import PretrainConfig
    from reidcli.ssl.engine import PretrainResult


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    from reidcli.ssl.engine import pretrain as _pretrain

    return _pretrain(cfg)


__all__ = ["pretrain"]
