"""Writing a generated dataset: render jobs (serially or in worker processes) into a staging
folder that only becomes the output folder once every image is on disk.

A crash or Ctrl-C therefore never leaves a half dataset under the requested name: what is
left is a hidden `.NAME.partial-*` sibling folder, which the next run does not reuse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import multiprocessing
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reidcli.data.synth.common import SynthError
from reidcli.data.synth.world import RenderJob, World
from reidcli.utils.checks import at_least
from reidcli.utils.diskerrors import write_failure
from reidcli.utils.outputs import Output, claim_output

Progress = Callable[[int, int], None]
"""Called as `progress(written, total)` after each image (serial) or batch (workers)."""

_CHUNK = 64


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SynthError(f"output folder {out} exists and is not empty; "
                         "choose another folder or pass --overwrite")


@contextlib.contextmanager
def staged_output(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh staging folder next to `out`; on success it replaces `out`."""
    dest = Path(out).absolute()
    _check_target(dest, overwrite)
    with claim_output(Output(dest, "`reid synth`", directory=True)):
        # Not tempfile.mkdtemp: its 0700 mode would survive the rename; mkdir honours umask.
        stage = dest.parent / f".{dest.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        stage.mkdir()
        with _replacing(stage, dest):
            yield stage


@contextlib.contextmanager
def _replacing(stage: Path, dest: Path) -> Iterator[None]:
    """On success `stage` replaces `dest`; on failure it is removed."""
    try:
        yield
        if dest.exists():
            # Move the old folder aside first so a failing rename can never lose both.
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "data")
            os.replace(stage, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, dest)
    except BaseException as err:
        shutil.rmtree(stage, ignore_errors=True)
        problem = write_failure(err, dest, within=stage) if isinstance(err, Exception) else None
        if problem is None:
            raise
        raise problem from err


def write_metadata(root: Path, info: dict[str, Any]) -> None:
    (root / "synth.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n",
                                     encoding="utf-8")


def write_dataset(
    out: str | os.PathLike[str], kind: str, cfg: Any, jobs: Sequence[RenderJob], world: World,
    *, overwrite: bool = False, workers: int = 1, progress: Progress | None = None,
    folders: Sequence[str] = (), files: dict[str, str] | None = None,
) -> Path:
    """Render `jobs` into the folder `out` (atomically, see `staged_output`), with `folders`
    made even when no job lands in them, the text `files`, and `synth.json` recording `kind`
    and the config dataclass `cfg`. Returns the absolute output path."""
    root = Path(out).absolute()
    with staged_output(root, overwrite) as stage:
        for folder in folders:
            (stage / folder).mkdir()
        write_jobs(jobs, world, stage, workers, progress)
        for name, text in (files or {}).items():
            (stage / name).write_text(text, encoding="utf-8")
        write_metadata(stage, {"kind": kind, "config": dataclasses.asdict(cfg)})
    return root


# Per worker process: the world is rebuilt once from its seed instead of being pickled.
_worker_world: World | None = None
_worker_root: Path | None = None


def _init_worker(seed: int, strength: float, root: str) -> None:
    global _worker_world, _worker_root
    _worker_world = World(seed, strength)
    _worker_root = Path(root)


def _write_one(world: World, root: Path, job: RenderJob) -> None:
    img, quality = world.render(job)
    # Encoding in memory and writing once is cheaper than Pillow's chunked file writes.
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    (root / job.relpath).write_bytes(buf.getvalue())


def _write_chunk(jobs: Sequence[RenderJob]) -> int:
    assert _worker_world is not None and _worker_root is not None
    for job in jobs:
        _write_one(_worker_world, _worker_root, job)
    return len(jobs)


def write_jobs(
    jobs: Sequence[RenderJob], world: World, root: Path, workers: int = 1,
    progress: Progress | None = None,
) -> None:
    """Render and save every job under `root`. The bytes do not depend on `workers`."""
    at_least(1, ("--workers", workers), error=SynthError)
    for folder in sorted({(root / job.relpath).parent for job in jobs}):
        folder.mkdir(parents=True, exist_ok=True)
    total = len(jobs)
    if workers == 1 or total <= _CHUNK:
        for done, job in enumerate(jobs, 1):
            _write_one(world, root, job)
            if progress is not None:
                progress(done, total)
        return
    chunks = [jobs[i : i + _CHUNK] for i in range(0, total, _CHUNK)]
    # spawn, not fork: the caller may hold threads (torch, rich) that fork would copy badly.
    ctx = multiprocessing.get_context("spawn")
    written = 0
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(world.seed, world.camera_strength, str(root))) as pool:
        for done in pool.map(_write_chunk, chunks):
            written += done
            if progress is not None:
                progress(written, total)
