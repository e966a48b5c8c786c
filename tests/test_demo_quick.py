"""The quick demo end to end, as CI runs it: every stage, a finite table, a picture."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from reidcli.demo import QUICK, DemoOptions, run_demo


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path: Path) -> None:
    out = io.StringIO()
    result = run_demo(DemoOptions(workdir=tmp_path / "reid-demo", quick=True, device="cpu",
                                  progress=False), console=Console(file=out, width=200))
    text = out.getvalue()
    assert len(result.rows) == 4
    for row in result.rows:
        for scores in (row.plain, row.reranked):
            assert scores.finite(), row
            assert all(0.0 <= v <= 1.0 for v in (scores.mAP, scores.rank1, scores.mINP))
    assert "mAP +RR" in text and "random init" in text and "pre-trained init" in text
    assert "direct transfer" in text and "adapted (--unsupervised)" in text
    assert "$ reid finetune --recipe" in text and "--unsupervised" in text
    if result.cfs_skipped is None:
        assert "$ reid cfs-filter" in text and "--subset" in text
    else:
        assert "cfs-filter step skipped" in text
    with Image.open(result.picture) as img:
        assert img.format == "PNG" and img.width > 0
    assert str(result.picture) in text.replace("\n", "")
    assert QUICK.name in text
