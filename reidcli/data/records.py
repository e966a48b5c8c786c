"""The records every dataset parser returns: the contract between data and the other stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "query", "gallery")
# camid of an image whose camera is not known (image folders without --cam-regex, a
# dataset's cameras outside a jointly trained model's SIE table)
UNKNOWN_CAMERA = -1


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image. `path` is absolute; `pid` is -1 for unlabelled/junk; ids are 0-based.

    In the train split `pid` is already relabelled to 0..n-1 (sorted original ids). In query
    and gallery it keeps the dataset's own id so that evaluation matches the published
    protocol (pid 0 distractors stay, -1 junk is dropped by the parser or the evaluator).
    """

    path: str
    pid: int
    camid: int
    viewid: int = 0


@dataclass
class ReidDataset:
    """A parsed dataset: records per split plus the counts models need (SIE table sizes)."""

    name: str
    root: Path
    splits: dict[str, list[ImageRecord]] = field(default_factory=dict)
    num_cams: int = 1
    num_views: int = 1

    def split(self, name: str) -> list[ImageRecord]:
        from reidcli.errors import DatasetError

        if name not in self.splits:
            known = ", ".join(self.splits) or "none"
            raise DatasetError(f"dataset {self.name!r} has no split {name!r} (it has: {known})")
        return self.splits[name]

    @property
    def train(self) -> list[ImageRecord]:
        """The training images; a test-only dataset (no train folder) is an error here."""
        from reidcli.errors import DatasetError

        records = self.split("train")
        if not records:
            raise DatasetError(
                f"{self.name} at {self.root} has no training image (a test-only dataset: "
                "query and gallery only); train on another dataset and evaluate on this one "
                "with `reid extract` and `reid evaluate`"
            )
        return records

    def training_split(self) -> str:
        """What self-supervised stages train on: the train split, or the first split of a
        dataset without one (an image folder)."""
        return "train" if "train" in self.splits else next(iter(self.splits))

    def training_images(self) -> list[ImageRecord]:
        split = self.training_split()
        return self.train if split == "train" else self.splits[split]

    @property
    def query(self) -> list[ImageRecord]:
        return self.split("query")

    @property
    def gallery(self) -> list[ImageRecord]:
        return self.split("gallery")

    @property
    def num_train_pids(self) -> int:
        train = self.splits.get("train", [])
        return len({r.pid for r in train if r.pid >= 0})
