"""Procedural synthetic person images (numpy + Pillow), deterministic by seed.

`write_market` writes a labelled Market-1501-layout dataset; `write_unlabeled` a
LUPerson-style folder mixing target-like and foreign images. Both derive everything from a
`World` (seed + camera strength), so the same seed gives the same cameras in both.
"""

from reidcli.data.synth.common import SynthError
from reidcli.data.synth.identity import Identity, Palette, near_twin, sample_identity
from reidcli.data.synth.market import MarketConfig, MarketSummary, plan_market, write_market
from reidcli.data.synth.unlabeled import (
    ManifestRow,
    UnlabeledConfig,
    UnlabeledSummary,
    plan_unlabeled,
    read_manifest,
    write_unlabeled,
)
from reidcli.data.synth.world import RenderJob, StyleRef, World

__all__ = [
    "Identity",
    "MarketConfig",
    "ManifestRow",
    "MarketSummary",
    "Palette",
    "RenderJob",
    "StyleRef",
    "SynthError",
    "UnlabeledConfig",
    "UnlabeledSummary",
    "World",
    "near_twin",
    "plan_market",
    "plan_unlabeled",
    "read_manifest",
    "sample_identity",
    "write_market",
    "write_unlabeled",
]
