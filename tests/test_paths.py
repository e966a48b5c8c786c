"""`Under`: a layout of named paths below an object's root."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from reidcli.runtime.rundir import CONFIG, RunDir
from reidcli.utils.paths import Under


@dataclass(frozen=True)
class _Layout:
    root: Path
    log = Under("logs", "run.log")


def test_under_joins_the_parts_below_the_root() -> None:
    assert _Layout(Path("/w")).log == Path("/w/logs/run.log")
    assert _Layout(Path("rel")).log == Path("rel/logs/run.log")
    assert isinstance(_Layout.log, Under)  # the class itself shows the declaration
    assert [f.name for f in fields(_Layout)] == ["root"]


def test_run_dir_names_its_files_below_its_root(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.config_path == tmp_path / "r" / CONFIG
    assert (run.trainer_path.name, run.best_dir.name, run.tensorboard_dir.name) == (
        "trainer.pt", "best", "tb")
