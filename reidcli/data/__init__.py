"""The dataset layer: parsers behind one registry, image reading, transforms, sampling.

Importing this package stays light (no torch): `transforms`, `sampler` and `torch_dataset`
are imported from their modules by the stages that train or extract.
"""

from reidcli.data.loading import load_dataset, parse_dataset
from reidcli.data.problems import Problem
from reidcli.data.records import SPLITS, ImageRecord, ReidDataset
from reidcli.data.registry import list_datasets
from reidcli.data.roots import DATA_ROOT_ENV, default_data_root

__all__ = [
    "DATA_ROOT_ENV",
    "SPLITS",
    "ImageRecord",
    "Problem",
    "ReidDataset",
    "default_data_root",
    "list_datasets",
    "load_dataset",
    "parse_dataset",
]
