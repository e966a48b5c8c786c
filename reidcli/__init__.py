"""reidcli: person re-identification toolkit (datasets, models, pre-training, retrieval)."""

__version__ = "0.1.0"

__all__ = ["Embedder", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import reidcli` (and `reid --help`) does not pay for torch.
    if name == "Embedder":
        from reidcli.deploy.embedder import Embedder

        return Embedder
    raise AttributeError(f"module 'reidcli' has no attribute {name!r}")
