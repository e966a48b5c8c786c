"""What every writing command checks before it writes, in one place.

    with claim_output(Output(path, "`reid rerank`", ours=is_distance_file,
                             inputs=[bank], overwrite=overwrite)):
        ...write path atomically...

`claim_output` refuses an output that is one of the command's inputs (the same file once
links are resolved, or for a run directory an input inside it), refuses to replace an
existing file the command did not make unless told to (`--overwrite`), creates the
parent folder, fails early when that folder cannot be written, and holds the output's exclusive
lock (`reidcli.utils.lock`) until the block ends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reidcli.errors import OutputError
from reidcli.utils.diskerrors import write_failure
from reidcli.utils.io import ensure_folder
from reidcli.utils.lock import output_lock

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Output:
    path: PathLike
    made_by: str
    """Who makes such files, for the messages: "`reid rerank`"."""
    ours: Callable[[Path], bool] | None = None
    """Whether an existing `path` is one this command made (and may replace); None: any
    existing file may be replaced."""
    inputs: Sequence[PathLike | None] = ()
    overwrite: bool = False
    option: str = "-o"
    flag: str | None = "--overwrite"
    """The option that allows replacing a foreign file; None when there is none."""
    directory: bool = False
    """`path` is a folder the command writes into (a run directory), not a file."""


def same_path(a: PathLike, b: PathLike) -> bool:
    """Whether `a` and `b` name the same file (links resolved; hard links too)."""
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _inside(inner: PathLike, folder: PathLike) -> bool:
    return Path(os.path.realpath(folder)) in Path(os.path.realpath(inner)).parents


def spec_path(spec: str | None) -> str | None:
    """The PATH of a `NAME:PATH` dataset spec (None without one)."""
    if not spec or ":" not in spec:
        return None
    return spec.partition(":")[2] or None


def check_output(out: Output) -> None:
    """Raise `OutputError` if writing `out.path` would destroy an input or a foreign file."""
    dest = Path(out.path)
    for given in out.inputs:
        if given is None:
            continue
        if same_path(dest, given) or (out.directory and _inside(given, dest)):
            raise OutputError(f"{out.option} {dest} would overwrite the input {given}; "
                              f"choose another {out.option}")
    if not dest.exists():
        return
    if dest.is_dir() != out.directory:
        kind = "a folder" if dest.is_dir() else "a file"
        raise OutputError(f"{out.option} {dest} is {kind}; choose another {out.option}")
    if out.overwrite or out.ours is None or out.ours(dest):
        return
    told = (f"pass {out.flag} to replace it or choose another {out.option}" if out.flag
            else f"choose another {out.option} (a new or empty folder)")
    what = "holds files that were not written by" if out.directory else "was not written by"
    raise OutputError(f"{dest} exists and {what} {out.made_by}; {told}")


def check_writable(folder: PathLike, output: PathLike, option: str = "-o") -> None:
    """Fail now, in one line, if files cannot be created in `folder` (not after an hour of
    work). Creating a file is the only reliable test: access() ignores read-only mounts."""
    try:
        fd, name = tempfile.mkstemp(prefix=".reid-write-test.", dir=folder)
    except OSError as err:
        problem = write_failure(err, Path(folder) / Path(output).name, option=option)
        if problem is None:
            raise
        raise problem from err
    os.close(fd)
    os.unlink(name)


@contextlib.contextmanager
def claim_output(out: Output, lock: bool = True) -> Iterator[Path]:
    """Check `out`, prepare its folder and hold its lock for the `with` block.

    `lock=False` only checks (the other ranks of a torchrun job, whose rank 0 holds it).
    """
    check_output(out)
    dest = Path(out.path)
    ensure_folder(dest.parent, out.option)
    if not lock:
        yield dest
        return
    with output_lock(dest, out.option):
        # An existing run directory is written into; anything else is created beside.
        check_writable(dest if out.directory and dest.is_dir() else dest.parent, dest,
                       out.option)
        # Checked again under the lock: the run that held it may have just written it.
        check_output(out)
        yield dest
