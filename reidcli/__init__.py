"""reidcli: person re-identification toolkit (datasets, models, pre-training, retrieval)."""

__version__ = "0.1.0"
