"""Deployment: ONNX export (`reid export`), the `Embedder` API and `reid search`.

    from reidcli import Embedder
    feats = Embedder.from_onnx("model.onnx").embed(crops)   # (N, D) float32
"""

from reidcli.deploy.embedder import Embedder
from reidcli.deploy.export import ExportOptions, ExportResult, export_onnx
from reidcli.deploy.search import SearchOptions, SearchResult, search
from reidcli.inference.graph import DeployModule, GraphSpec

__all__ = ["DeployModule", "Embedder", "ExportOptions", "ExportResult", "GraphSpec",
           "SearchOptions", "SearchResult", "export_onnx", "search"]
