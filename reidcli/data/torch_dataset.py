"""A torch `Dataset` over image records."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from reidcli.data.images import read_image
from reidcli.data.records import ImageRecord

Sample = tuple[torch.Tensor, int, int, int, int]


class ReidImageDataset(Dataset[Sample]):
    """Item i -> (transform(image), pid, camid, viewid, i).

    The index comes back so that feature extraction can write rows in record order even
    when a sampler reorders or a distributed run splits the items.
    """

    def __init__(
        self, records: Sequence[ImageRecord], transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        return self.transform(read_image(r.path)), r.pid, r.camid, r.viewid, index
