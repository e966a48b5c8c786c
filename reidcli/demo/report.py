"""The demo's closing table: random init vs pre-trained init, and direct transfer vs adapted
on a second world, without and with re-ranking."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.table import Table


@dataclass(frozen=True)
class Scores:
    mAP: float
    rank1: float
    mINP: float

    @classmethod
    def from_result(cls, result: dict[str, float]) -> Scores:
        return cls(float(result["mAP"]), float(result["rank1"]), float(result["mINP"]))

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.mAP, self.rank1, self.mINP))


@dataclass(frozen=True)
class Row:
    label: str
    plain: Scores
    reranked: Scores


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def results_table(rows: list[Row], title: str) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for group in ("", " +RR"):
        for name in ("mAP", "Rank-1", "mINP"):
            table.add_column(f"{name}{group}", justify="right")
    for row in rows:
        cells = [_pct(v) for s in (row.plain, row.reranked) for v in (s.mAP, s.rank1, s.mINP)]
        table.add_row(row.label, *cells)
    return table


def verdict(random: Row, pretrained: Row) -> str:
    """One sentence saying whether pre-training helped, in mAP points."""
    gain = 100 * (pretrained.plain.mAP - random.plain.mAP)
    gain_rr = 100 * (pretrained.reranked.mAP - random.reranked.mAP)
    if gain > 0:
        return (f"Pre-trained init beats random init by {gain:+.1f} mAP points "
                f"({gain_rr:+.1f} with re-ranking).")
    return (f"Pre-trained init did not beat random init this time ({gain:+.1f} mAP points, "
            f"{gain_rr:+.1f} with re-ranking): the demo's pre-training is tiny; see "
            f"docs/demo.md for what to change.")


def adaptation_verdict(transfer: Row, adapted: Row) -> str:
    """One sentence on adapting to the second world without its labels, in mAP points."""
    gain = 100 * (adapted.plain.mAP - transfer.plain.mAP)
    if gain > 0:
        return (f"On the second world, adapting without its labels adds {gain:+.1f} mAP points "
                f"to direct transfer.")
    return (f"On the second world, adapting without its labels did not beat direct transfer "
            f"this time ({gain:+.1f} mAP points); see docs/demo.md.")
