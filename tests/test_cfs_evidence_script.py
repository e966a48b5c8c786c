"""benchmarks/cfs_evidence.py reads a `cfs-filter` list the way the stage writes it (header
comments, paths relative to the source root) and counts its target-like share by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture()
def cfs_evidence():
    sys.path.insert(0, str(BENCH))
    try:
        import cfs_evidence

        yield cfs_evidence
    finally:
        sys.path.remove(str(BENCH))


def test_kept_list_precision_by_hand(tmp_path: Path, cfs_evidence) -> None:
    rows = [("a/0.jpg", "target", 1), ("a/1.jpg", "target", 1), ("b/2.jpg", "foreign", 1),
            ("b/3.jpg", "foreign", 0), ("b/4.jpg", "foreign", 1), ("b/5.jpg", "target", 1)]
    (tmp_path / "manifest.csv").write_text(
        "path,domain,source,person,height,width\n"
        + "".join(f"{p},{d},{d}0,{person},64,32\n" for p, d, person in rows))
    # As `reid cfs-filter` writes it: '#' header lines, then the kept paths, best first.
    kept = tmp_path / "cfs.txt"
    kept.write_text("# reid cfs-filter: ...\n# keep: fraction 0.5\na/1.jpg\nb/3.jpg\na/0.jpg\n")
    result = cfs_evidence.evaluate(kept, tmp_path, seeds=3)
    assert result["kept"] == 3 and result["source_images"] == 6
    assert result["precision"] == pytest.approx(2 / 3)  # a/1 and a/0 of 3 kept
    assert result["recall"] == pytest.approx(2 / 3)  # of the 3 target images
    assert result["no_person_share"] == pytest.approx(1 / 3)
