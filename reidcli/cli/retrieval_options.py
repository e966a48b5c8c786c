"""The retrieval options of `reid evaluate` and `reid rerank`, declared once."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from reidcli.cli.common import MetricName, check_device, option_group
from reidcli.errors import BankError
from reidcli.retrieval.distances import DEFAULT_CHUNK_BYTES
from reidcli.retrieval.pipeline import Retrieval
from reidcli.retrieval.rerank import RerankParams

_RERANK = RerankParams()


@dataclass(frozen=True)
class RetrievalArgs:
    metric: MetricName
    k1: int
    k2: int
    lam: float
    qe: int
    dba: int
    query_split: str
    gallery_split: str
    device: str
    chunk_mb: int

    def retrieval(self, rerank: bool) -> Retrieval:
        """The settings as one `Retrieval`; --k1/--k2/--lambda only with `rerank`."""
        try:
            params = RerankParams(self.k1, self.k2, self.lam) if rerank else None
            return Retrieval(self.metric.value, dba=self.dba, qe=self.qe,  # type: ignore[arg-type]
                             rerank=params)
        except (ValueError, BankError) as err:
            raise typer.BadParameter(str(err)) from None

    @property
    def budget(self) -> int:
        return self.chunk_mb * 2**20

    @property
    def torch_device(self) -> str:
        return check_device(self.device)


retrieval_options = option_group("args", RetrievalArgs, {
    "metric": (MetricName, typer.Option(
        MetricName.cosine, "--metric", help="cosine: squared euclidean on L2-normalised "
        "features; euclidean: squared euclidean on raw features.")),
    "k1": (int, typer.Option(_RERANK.k1, "--k1",
                             help="Re-ranking: k-reciprocal neighbourhood size.")),
    "k2": (int, typer.Option(_RERANK.k2, "--k2",
                             help="Re-ranking: local query expansion size (1 = off).")),
    "lam": (float, typer.Option(_RERANK.lambda_value, "--lambda",
                                help="Re-ranking: weight of the original distance.")),
    "qe": (int, typer.Option(0, "--qe", min=0, metavar="K",
                             help="Average query expansion, top K.")),
    "dba": (int, typer.Option(0, "--dba", min=0, metavar="K",
                              help="Database-side augmentation, top K.")),
    "query_split": (str, typer.Option("query", "--query-split",
                                      help="Bank split of the queries.")),
    "gallery_split": (str, typer.Option("gallery", "--gallery-split",
                                        help="Bank split of the gallery.")),
    "device": (str, typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ...")),
    "chunk_mb": (int, typer.Option(DEFAULT_CHUNK_BYTES // 2**20, "--chunk-mb", min=8,
                                   help="Memory budget of one block of distances (MiB).")),
})
