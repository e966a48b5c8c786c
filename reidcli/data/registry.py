"""The table of known dataset parsers: names, usual folder names, layouts and options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidcli.data.records import ReidDataset
from reidcli.errors import DatasetError

Parser = Callable[..., ReidDataset]
"""`parser(root, problems, **options) -> ReidDataset`; appends what it skips to `problems`."""


@dataclass(frozen=True)
class DatasetOption:
    type: type
    default: Any
    help: str


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    parse: Parser
    layout: str
    """The expected folder layout, quoted in error messages and docs."""
    folders: tuple[str, ...] = ()
    """Usual folder names under the data root, tried in order."""
    markers: tuple[str, ...] = ()
    """Relative paths of which at least one exists in a root of this dataset."""
    options: dict[str, DatasetOption] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def looks_like_root(self, path: Path) -> bool:
        return path.is_dir() and any((path / m).exists() for m in self.markers)


_REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    for key in (info.name, *info.aliases):
        if key in _REGISTRY:
            raise ValueError(f"dataset name {key!r} registered twice")
        _REGISTRY[key] = info
    return info


def _ensure_loaded() -> None:
    # The parser modules register themselves on import; importing here keeps the registry
    # complete no matter which module a caller imported first.
    import reidcli.data.parsers  # noqa: F401


def get_dataset_info(name: str) -> DatasetInfo:
    _ensure_loaded()
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        known = ", ".join(n for n, _ in list_datasets())
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}")
    return _REGISTRY[key]


def all_datasets() -> list[DatasetInfo]:
    _ensure_loaded()
    seen: dict[str, DatasetInfo] = {}
    for info in _REGISTRY.values():
        seen.setdefault(info.name, info)
    return list(seen.values())


def list_datasets() -> list[tuple[str, str]]:
    """(name, description) of every known dataset, in registration order."""
    return [(info.name, info.description) for info in all_datasets()]
