"""Dataset specs (`NAME` or `NAME:PATH`) and where on disk they point."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from reidcli.data.registry import DatasetInfo, get_dataset_info
from reidcli.errors import DatasetError

log = logging.getLogger(__name__)

DATA_ROOT_ENV = "REID_DATA_ROOT"


@dataclass(frozen=True)
class DatasetSpec:
    info: DatasetInfo
    path: Path | None
    """The explicit PATH of `NAME:PATH`, else None (search the data root)."""


def parse_spec(spec: str) -> DatasetSpec:
    """Split `NAME[:PATH]`; only the first colon separates, so paths may contain colons."""
    name, sep, path = spec.partition(":")
    if not name.strip():
        raise DatasetError(f"bad dataset spec {spec!r}: expected NAME or NAME:PATH")
    if sep and not path.strip():
        raise DatasetError(f"bad dataset spec {spec!r}: the path after ':' is empty")
    return DatasetSpec(get_dataset_info(name), Path(path).expanduser() if sep else None)


def absolute_path(path: str | None, keywords: tuple[str, ...] = ()) -> str | None:
    """`path` made absolute against the working directory (None and `keywords`, such as
    `timm`, unchanged): what a saved run configuration stores, so that `--resume` works
    from any directory."""
    if path is None or path in keywords or not path.strip():
        return path
    return os.path.abspath(os.path.expanduser(path))


def absolute_if_present(path: str | None) -> str | None:
    """`path` made absolute if it names something from the working directory; else as given
    (a `subset` list is also looked up under the dataset root, which is absolute already)."""
    if path is None or not Path(path).expanduser().exists():
        return path
    return absolute_path(path)


def absolute_spec(spec: str) -> str:
    """`NAME:PATH` with PATH absolute; `NAME` alone (searched under the data root) as given."""
    name, sep, path = spec.partition(":")
    if not sep or not path.strip():
        return spec
    return f"{name}:{absolute_path(path)}"


def absolute_data_root(data_root: str | None, specs: tuple[str, ...] | list[str]) -> str | None:
    """The data root to save with a run, absolute: the given one, or (when a spec names a
    dataset without a path) the one it was found under (`$REID_DATA_ROOT` or `./data` at
    start), so that `--resume` from another directory or shell finds the same data."""
    if data_root is not None:
        return absolute_path(data_root)
    if any(":" not in s or not s.partition(":")[2].strip() for s in specs):
        return str(default_data_root().resolve())
    return None


def default_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """`data_root` if given, else `$REID_DATA_ROOT`, else `./data`."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else Path("data")


def _search(info: DatasetInfo, base: Path, include_base: bool) -> Path | None:
    """`base` itself (for an explicit PATH), a usual folder name under it, or one more level.

    The extra level covers toolkits that unpack archives inside a folder of their own
    (`data/market1501/Market-1501-v15.09.15/`).
    """
    if include_base and info.looks_like_root(base):
        return base
    for outer in info.folders:
        candidate = base / outer
        if info.looks_like_root(candidate):
            return candidate
        for inner in info.folders:
            nested = candidate / inner
            if info.looks_like_root(nested):
                return nested
    return None


def resolve_root(spec: DatasetSpec, data_root: str | os.PathLike[str] | None = None) -> Path:
    """The absolute folder holding the dataset named by `spec`."""
    info = spec.info
    if spec.path is not None:
        if not spec.path.exists():
            raise DatasetError(
                f"{info.name}: {spec.path} does not exist. Expected layout:\n{info.layout}"
            )
        if spec.path.is_file():
            # List-file datasets (luperson) are given by their list; the parser handles it.
            return spec.path.resolve()
        found = _search(info, spec.path, include_base=True)
        if found is None:
            # Let the parser name exactly which part of the layout is missing.
            return spec.path.resolve()
        return found.resolve()
    base = default_data_root(data_root)
    if not info.folders:
        raise DatasetError(
            f"{info.name} has no usual folder name: give its location as {info.name}:PATH"
        )
    found = _search(info, base, include_base=False)
    if found is None:
        tried = ", ".join(info.folders)
        raise DatasetError(
            f"could not find {info.name} under the data root {base.resolve()} (looked for "
            f"{tried}). Use {info.name}:PATH, --data-root or ${DATA_ROOT_ENV}. "
            f"Expected layout:\n{info.layout}"
        )
    log.debug("%s found at %s", info.name, found)
    return found.resolve()
