"""Several datasets as one training set: identity and camera ranges, labels, options.

Joint training (torchreid's and fast-reid's multi-dataset training) concatenates the train
splits; each dataset's identities and cameras get their own range after the previous
datasets' (`Source`), so no two datasets share a class or an SIE camera embedding. The
ranges are recorded in `model.json` (`ModelConfig.sources`) so that `reid extract` can give
images of a known dataset the camera embeddings that dataset trained.

Dataset options (`-O`) attach to datasets by a prefix: `KEY=VALUE` applies to every
training dataset, `NAME.KEY=VALUE` only to the datasets named NAME (the name before `:` in
the spec, or the registry's name), `N.KEY=VALUE` to the N-th `--data` (1-based).
Evaluation-only datasets get only the options whose prefix names them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reidcli.data.loading import parse_options
from reidcli.data.records import UNKNOWN_CAMERA, ImageRecord, ReidDataset
from reidcli.data.registry import get_dataset_info
from reidcli.errors import DatasetError


@dataclass(frozen=True)
class Source:
    """Where one dataset's ids and cameras sit in a joint model: [offset, offset + count)."""

    label: str
    dataset: str  # the registry name (`market1501`), for matching a bank's dataset
    root: str  # the dataset's folder, resolved
    pid_offset: int
    num_pids: int
    cam_offset: int
    num_cams: int

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "dataset": self.dataset, "root": self.root,
                "pid_offset": self.pid_offset, "num_pids": self.num_pids,
                "cam_offset": self.cam_offset, "num_cams": self.num_cams}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def describe(self) -> str:
        return (f"{self.label}: ids {self.pid_offset}..{self.pid_offset + self.num_pids - 1}, "
                f"cameras {self.cam_offset}..{self.cam_offset + self.num_cams - 1} ({self.root})")


def spec_labels(specs: Sequence[str]) -> list[str]:
    """A short unique name per spec: its NAME, or NAME:FOLDER when two specs share a NAME
    (two worlds of one layout), or with `#i` appended when even that repeats."""
    names = [s.partition(":")[0].lower() for s in specs]
    labels = []
    for spec, name in zip(specs, names, strict=True):
        path = spec.partition(":")[2]
        labels.append(f"{name}:{Path(path).name}" if names.count(name) > 1 and path else name)
    return [f"{label}#{i + 1}" if labels.count(label) > 1 else label
            for i, label in enumerate(labels)]


def options_for(pairs: Sequence[str], spec: str, position: int | None) -> dict[str, str]:
    """The `-O` options of the dataset `spec`, the `position`-th (1-based) training dataset,
    or an evaluation-only one (`position` None: prefixed options naming it only)."""
    own = {_canonical(spec.partition(":")[0])}
    if position is not None:
        own.add(str(position))
    kept = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        prefix, dot, bare = key.partition(".")
        if not dot:
            if position is not None:
                kept.append(pair)
        elif _canonical(prefix) in own:
            kept.append(f"{bare}{sep}{value}")
    return parse_options(kept)


def _canonical(name: str) -> str:
    """A dataset name or alias as the registry names it (`market` -> `market1501`); anything
    else (a position) as given."""
    name = name.strip().lower()
    try:
        return get_dataset_info(name).name.lower()
    except DatasetError:
        return name


def check_prefixes(pairs: Sequence[str], specs: Sequence[str],
                   others: Sequence[str] = ()) -> None:
    """An option prefixed with a name or number that names no dataset (of the training
    `specs` or the evaluation-only `others`) is a typo: refuse it."""
    known = {str(i + 1) for i in range(len(specs))}
    known |= {_canonical(spec.partition(":")[0]) for spec in (*specs, *others)}
    for pair in pairs:
        prefix, dot, _ = pair.partition("=")[0].partition(".")
        if dot and _canonical(prefix) not in known:
            raise DatasetError(
                f"dataset option {pair!r}: {prefix!r} names no dataset of --data or "
                f"--eval-data (use NAME.KEY=VALUE, N.KEY=VALUE or KEY=VALUE for all)")


def load_joint(specs: Sequence[str], data_root: str | os.PathLike[str] | None,
               option_pairs: Sequence[str], eval_specs: Sequence[str] = (),
               ) -> tuple[ReidDataset, list[Source], list[ReidDataset]]:
    """(the combined training set, its sources, each dataset as loaded).

    With one spec the dataset is returned unchanged (its own query/gallery and camera
    count); with several, the combined set has the train split only, ids and cameras
    shifted by each source's offsets. `eval_specs` only widens the names an option prefix
    may use.
    """
    from reidcli.data import load_dataset  # looked up per call: tests substitute it

    check_prefixes(option_pairs, specs, eval_specs)
    datasets = [load_dataset(spec, data_root, **options_for(option_pairs, spec, i + 1))
                for i, spec in enumerate(specs)]
    labels = spec_labels(specs)
    sources: list[Source] = []
    train: list[ImageRecord] = []
    pid_offset = cam_offset = 0
    for label, ds in zip(labels, datasets, strict=True):
        records = ds.train
        sources.append(Source(label, ds.name, str(Path(ds.root).resolve()), pid_offset,
                              ds.num_train_pids, cam_offset, max(1, ds.num_cams)))
        train += [ImageRecord(r.path, r.pid + pid_offset if r.pid >= 0 else r.pid,
                              r.camid + cam_offset, r.viewid) for r in records]
        pid_offset += ds.num_train_pids
        cam_offset += max(1, ds.num_cams)
    if len(datasets) == 1:
        return datasets[0], sources, datasets
    joint = ReidDataset("+".join(labels), Path(os.path.commonpath([s.root for s in sources])),
                        {"train": train}, num_cams=cam_offset,
                        num_views=max(ds.num_views for ds in datasets))
    return joint, sources, datasets


def camera_offset(sources: Sequence[Source], dataset: str, root: str | os.PathLike[str]
                  ) -> int | None:
    """The camera offset of a bank's dataset in a joint model: the source with the same
    folder, else the only source of the same registry name; None (unknown camera) when
    none matches or the name is ambiguous."""
    resolved = str(Path(root).resolve())
    for source in sources:
        if source.root == resolved:
            return source.cam_offset
    named = [s for s in sources if s.dataset == dataset]
    return named[0].cam_offset if len(named) == 1 else None


def shift_cameras(camids: torch.Tensor, offset: int | None) -> torch.Tensor:
    """Dataset camera ids -> the joint model's (`offset` None: unknown, -1; an id that is
    unknown already stays so)."""
    if offset is None:
        return torch.full_like(camids, UNKNOWN_CAMERA)
    return torch.where(camids < 0, camids, camids + offset) if offset else camids
