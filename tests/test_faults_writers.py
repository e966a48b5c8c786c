"""Kill the resumable HDF5 writers at every named write point, and at random moments: the
resumed file must equal an uninterrupted one, with nothing left behind."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults import (
    _write_bank,
    _write_scores,
    child_env,
    expect_crash,
    expect_ok,
    h5_content,
    leftovers,
    run,
)

CHILD = str(Path(__file__).with_name("_faults.py"))
WRITE = {"bank": _write_bank, "scores": _write_scores}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, dict[str, object]]:
    """The uninterrupted files (written in this process: the writer is deterministic)."""
    folder = tmp_path_factory.mktemp("ref")
    out = {}
    for kind, write in WRITE.items():
        write(folder / f"{kind}.h5", 0.0)
        out[kind] = h5_content(folder / f"{kind}.h5")
    return out


# Every write point of the writers: the manifest, a chunk in the middle (the 4th) before,
# during and after its temporary file and rename, and the final file.
POINTS = [
    "atomic.created:manifest.json",
    "atomic.created:chunk-000003.h5",
    "partial.chunk-open@4",
    "atomic.written:chunk-000003.h5",
    "atomic.renamed:chunk-000003.h5",
    "partial.chunk-committed@4",
    "partial.final-open",
    "atomic.written:out.h5",
    "partial.final-renamed",
]
FAST = {"partial.chunk-open@4"}


def _crash_and_resume(kind: str, point: str, tmp_path: Path, reference) -> None:
    out = tmp_path / "out.h5"
    expect_crash(run([CHILD, kind, str(out)], crash_at=point), point)
    assert out.exists() == (point == "partial.final-renamed")
    expect_ok(run([CHILD, kind, str(out)]))
    assert h5_content(out) == reference[kind]
    assert leftovers(tmp_path, {"out.h5"}) == []


@pytest.mark.parametrize("kind", ["bank", "scores"])
@pytest.mark.parametrize("point", sorted(FAST))
def test_crash_at_a_write_point_then_resume(kind: str, point: str, tmp_path: Path,
                                            reference) -> None:
    _crash_and_resume(kind, point, tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bank", "scores"])
@pytest.mark.parametrize("point", [p for p in POINTS if p not in FAST])
def test_crash_at_every_write_point_then_resume(kind: str, point: str, tmp_path: Path,
                                                reference) -> None:
    _crash_and_resume(kind, point, tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bank", "scores"])
def test_random_kills_then_resume(kind: str, tmp_path: Path, reference) -> None:
    """SIGKILL at random instants of the writing (a few tries), resuming each time."""
    out = tmp_path / "out.h5"
    rng = random.Random(17)
    killed = 0
    for _ in range(4):
        child = subprocess.Popen([sys.executable, CHILD, kind, str(out), "0.01"],
                                 env=child_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            child.wait()
            break
        time.sleep(rng.uniform(0.0, 0.25))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed += 1
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()  # type: ignore[union-attr]
    assert killed >= 1
    expect_ok(run([CHILD, kind, str(out)]))
    assert h5_content(out) == reference[kind]
    assert leftovers(tmp_path, {"out.h5"}) == []
