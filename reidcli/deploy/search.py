"""`reid search`: rank an unlabelled gallery for query images, with a trained or exported model.

The gallery is a feature bank; a gallery folder is first extracted (by `reid extract`'s code)
into a bank that later searches reuse while model and images are unchanged. Queries are
embedded in memory by an `Embedder` running the same model; ranking is the retrieval code's
(cosine distance, stable ties; optionally k-reciprocal re-ranking).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reidcli.data.records import ImageRecord
from reidcli.deploy.embedder import Embedder
from reidcli.errors import BankError, ReidError
from reidcli.retrieval.bank import Split, read_bank
from reidcli.retrieval.pipeline import Retrieval
from reidcli.retrieval.rerank import RerankParams
from reidcli.runtime.files import file_sha256
from reidcli.utils.checks import at_least
from reidcli.utils.io import atomic_path, atomic_write_text, json_with_keys
from reidcli.utils.outputs import Output, check_output, claim_output
from reidcli.visualize.ranking import Match, MatchKind, RankedQuery

log = logging.getLogger(__name__)

GALLERY_SPLIT = "gallery"


@dataclass
class SearchOptions:
    queries: Path
    """One image or a folder of images (recursive)."""
    gallery: Path
    """A folder of images or a feature bank (.h5) made with the same model."""
    checkpoint: Path | None = None
    onnx: Path | None = None
    k: int = 20
    rerank: bool = False
    json: Path | None = None
    picture: Path | None = None
    save_bank: Path | None = None
    """Where a gallery folder's bank goes (default: next to the outputs, else the working
    directory, as GALLERY_NAME.gallery.h5)."""
    gallery_split: str | None = None
    """Split of a gallery bank (default: its only split, else `gallery`)."""
    cam_regex: str | None = None
    flip: bool = False
    device: str = "auto"
    batch_size: int = 64
    workers: int = 0
    progress: bool = True
    overwrite: bool = False
    """Replace an existing --json / picture file that `reid search` did not write."""


@dataclass
class SearchResult:
    ranked: list[RankedQuery]
    bank: Path
    bank_reused: bool
    model: str
    picture: Path | None = None
    json: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "gallery_bank": str(self.bank), "queries": [
            {"path": q.path, "camid": q.camid, "matches": [
                {"rank": r, "path": m.path, "distance": m.distance, "camid": m.camid,
                 "gallery_index": m.gallery_index}
                for r, m in enumerate(q.matches, start=1)]}
            for q in self.ranked]}


def _embedder(opts: SearchOptions) -> Embedder:
    if (opts.checkpoint is None) == (opts.onnx is None):
        raise ReidError("give exactly one of --checkpoint RUN_DIR and --onnx MODEL.onnx")
    if opts.onnx is not None:
        return Embedder.from_onnx(opts.onnx, device=opts.device, flip=opts.flip,
                                  batch_size=opts.batch_size)
    return Embedder.from_run(opts.checkpoint, device=opts.device,  # type: ignore[arg-type]
                             flip=opts.flip, batch_size=opts.batch_size)


def _has_files(folder: Path) -> bool:
    return any(p.is_file() for p in folder.rglob("*"))


def query_records(path: Path, cam_regex: str | None) -> list[ImageRecord]:
    """The query image, or every image below the query folder, unlabelled."""
    from reidcli.inference.extract import image_folder_records, image_record

    if path.is_dir():
        if not _has_files(path):
            raise ReidError(f"the query folder {path} holds no images")
        return image_folder_records(path, cam_regex)
    if not path.is_file():
        raise ReidError(f"query image or folder not found: {path}")
    return [image_record(str(path), cam_regex)]


def default_bank_path(opts: SearchOptions) -> Path:
    if opts.save_bank is not None:
        return Path(opts.save_bank)
    anchor = next((p for p in (opts.picture, opts.json) if p is not None), None)
    folder = Path(anchor).parent if anchor is not None else Path.cwd()
    return folder / f"{Path(opts.gallery).resolve().name}.gallery.h5"


def gallery_bank(opts: SearchOptions) -> tuple[Path, bool]:
    """(bank path, reused?): a gallery bank as given, or the gallery folder extracted once."""
    from reidcli.inference.extract import ExtractOptions, extract_bank

    gallery = Path(opts.gallery)
    if gallery.is_file():
        return gallery, True
    if not gallery.is_dir():
        raise ReidError(f"gallery folder or bank not found: {gallery}")
    if not _has_files(gallery):
        raise ReidError(f"the gallery folder {gallery} holds no images")
    bank = default_bank_path(opts)
    result = extract_bank(ExtractOptions(
        checkpoint=opts.checkpoint, onnx=opts.onnx, output=bank, images=gallery,
        images_split=GALLERY_SPLIT, cam_regex=opts.cam_regex, batch_size=opts.batch_size,
        workers=opts.workers, flip=opts.flip, device=opts.device, replace_stale=True,
        progress=opts.progress))
    return bank, result.skipped


def _model_hashes(embedder: Embedder, opts: SearchOptions) -> set[str]:
    """Checksums a bank of this model may carry: the weights', and an exported graph's."""
    hashes = {embedder.spec.checkpoint_sha256}
    if opts.onnx is not None:
        hashes.add(file_sha256(Path(opts.onnx)))
    return hashes - {""}


def _gallery_split(path: Path, name: str | None, embedder: Embedder,
                   opts: SearchOptions) -> Split:
    with read_bank(path) as bank:
        if name is None:
            name = next(iter(bank.splits)) if len(bank.splits) == 1 else GALLERY_SPLIT
        made_by = bank.attrs.get("checkpoint_sha256")
        if made_by is not None and made_by not in _model_hashes(embedder, opts):
            raise BankError(f"{path} was extracted with another model ({bank.attrs.get('model')}"
                            f", {bank.attrs.get('checkpoint')}); search it with that model or "
                            f"pass the gallery folder")
        flipped = bank.attrs.get("flip")
        if flipped is not None and bool(flipped) != (opts.flip or embedder.spec.flip):
            log.warning("%s was extracted %s flip averaging, the queries are embedded %s it; "
                        "distances mix the two", path, "with" if flipped else "without",
                        "with" if opts.flip or embedder.spec.flip else "without")
        split = bank[name].load()
    if len(split) == 0:
        raise BankError(f"{path}: the gallery split {name!r} is empty")
    if split.dim != embedder.dim:
        raise BankError(f"{path} holds {split.dim}-d features; the model gives {embedder.dim}")
    return split


def rank(query: np.ndarray, gallery: np.ndarray, k: int, retrieval: Retrieval
         ) -> tuple[np.ndarray, np.ndarray]:
    """(distances, gallery indices) of each query's k nearest, nearest first.

    Every gallery item takes part: a search gallery is unlabelled.
    """
    with torch.inference_mode():
        vals, idx = retrieval.topk(*retrieval.prepare(query, gallery), k)
    return vals.numpy(), idx.numpy()


def search_retrieval(rerank_on: bool) -> Retrieval:
    """Cosine distances, re-ranked with the published defaults when asked."""
    return Retrieval(rerank=RerankParams() if rerank_on else None)


def is_search_json(path: Path) -> bool:
    """Whether `path` holds ranked lists written by `reid search --json`."""
    return json_with_keys(path, ("model", "gallery_bank", "queries"))


def _claims(opts: SearchOptions) -> list[Output]:
    """The files search writes, checked before any work: never an input (a query image, the
    gallery bank), a foreign file only with `overwrite`."""
    from reidcli.visualize.ranklist import is_our_picture

    inputs = [Path(opts.queries), Path(opts.gallery), opts.checkpoint, opts.onnx]
    wanted = [(opts.json, "`reid search --json`", is_search_json, "--json"),
              (opts.picture, "`reid search` (a ranked-list picture)", is_our_picture, "-o")]
    return [Output(path, who, ours=ours, inputs=inputs, overwrite=opts.overwrite, option=opt)
            for path, who, ours, opt in wanted if path is not None]


def search(opts: SearchOptions) -> SearchResult:
    """Rank the gallery for every query; write the JSON and picture when asked."""
    at_least(1, ("-k", opts.k))
    claims = _claims(opts)
    for claim in claims:
        check_output(claim)
    embedder = _embedder(opts)
    records = query_records(Path(opts.queries), opts.cam_regex)
    bank, reused = gallery_bank(opts)
    gallery = _gallery_split(bank, opts.gallery_split, embedder, opts)
    cams = np.array([r.camid for r in records], np.int64)
    feats = embedder.embed([r.path for r in records], camids=cams)
    dists, idx = rank(feats, gallery.read_features(), opts.k, search_retrieval(opts.rerank))
    paths = gallery.read_paths()
    ranked = [RankedQuery(i, r.path, -1, r.camid, [
        Match(paths[j], -1, int(gallery.camids[j]), float(d), MatchKind.UNLABELLED, int(j))
        for d, j in zip(drow.tolist(), irow.tolist(), strict=True)])
        for i, (r, drow, irow) in enumerate(zip(records, dists, idx, strict=True))]
    result = SearchResult(ranked, bank, reused, embedder.spec.model)
    for claim in claims:
        with claim_output(claim) as path:
            if path == Path(opts.json or ""):
                atomic_write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")
                result.json = path
            else:
                result.picture = draw(ranked, bank, path)
    return result


def draw(ranked: list[RankedQuery], bank: Path, output: Path) -> Path:
    """The ranked lists as `reid visualize` draws them (PNG, atomic)."""
    from reidcli.visualize.draw import TileStyle, draw_ranklists
    from reidcli.visualize.ranklist import ImageLoader, picture_tag

    canvas = draw_ranklists(ranked, ImageLoader(bank, None), TileStyle())
    with atomic_path(output, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG", pnginfo=picture_tag())
    return output


def result_table(result: SearchResult, shown: int | None = None):
    """A rich table: one row per (query, rank)."""
    from rich.table import Table

    t = Table(title=f"search ({result.model}; gallery {result.bank.name})")
    for col, justify in (("query", "left"), ("rank", "right"), ("distance", "right"),
                         ("gallery image", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for q in result.ranked:
        for r, m in enumerate(q.matches[:shown], start=1):
            t.add_row(os.path.basename(q.path) if r == 1 else "", str(r), f"{m.distance:.4f}",
                      m.path)
    return t
