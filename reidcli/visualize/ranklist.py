"""`reid visualize` as a library call: choose queries, rank, load images, draw, save.

Image paths come from the bank or distance file. Absolute paths are used as they are;
relative ones are looked up under `image_root` when given, else next to the source file and
then in the working directory. A few missing images become grey "missing" tiles (with a
warning); when none can be found the call fails and says to pass `--image-root`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from reidcli.errors import ReidError
from reidcli.retrieval.pipeline import Retrieval, open_source
from reidcli.utils.io import atomic_path
from reidcli.utils.outputs import Output, claim_output
from reidcli.visualize.draw import TileStyle, draw_ranklists
from reidcli.visualize.ranking import RankedQuery, rank_source

log = logging.getLogger(__name__)

SOFTWARE_KEY = "Software"
SOFTWARE = "reidcli visualize"


@dataclass
class RankOptions:
    source: Path
    """Feature bank or distance file."""
    output: Path = Path("ranks.png")
    queries: int | list[int] = 8
    """The first N queries, or a list of 0-based query indices."""
    k: int = 10
    image_root: Path | None = None
    retrieval: Retrieval = Retrieval()
    """How a bank's features are compared (distance files carry their own distances)."""
    query_split: str = "query"
    gallery_split: str = "gallery"
    style: TileStyle = field(default_factory=TileStyle)
    overwrite: bool = False
    """Replace an existing output that `reid visualize` did not draw."""


@dataclass
class RankResult:
    path: Path
    size: tuple[int, int]
    ranked: list[RankedQuery]
    missing: int
    """Images that could not be found or read (drawn as grey tiles)."""


def parse_queries(text: str) -> int | list[int]:
    """`N` -> the first N queries; `3,17,42` (or `17,` for one) -> those query indices."""
    text = text.strip()
    try:
        if "," in text:
            indices = [int(part) for part in text.split(",") if part.strip()]
            if not indices or min(indices) < 0:
                raise ValueError
            return indices
        count = int(text)
    except ValueError:
        raise ReidError(f"--queries takes a count N or comma-separated query indices such as "
                        f"3,17,42 (0-based), got {text!r}") from None
    if count < 1:
        raise ReidError(f"--queries N needs N >= 1, got {count}")
    return count


class ImageLoader:
    """Resolves and reads tile images, counting those that cannot be found or decoded."""

    def __init__(self, source: Path, image_root: Path | None) -> None:
        self.roots = [image_root] if image_root is not None else [source.parent, Path.cwd()]
        self.missing: list[str] = []
        self.found = 0

    def resolve(self, path: str) -> Path | None:
        p = Path(path)
        if p.is_absolute():
            return p if p.is_file() else None
        return next((r / p for r in self.roots if (r / p).is_file()), None)

    def __call__(self, path: str) -> Image.Image | None:
        resolved = self.resolve(path)
        if resolved is not None:
            try:
                with Image.open(resolved) as img:
                    image = img.convert("RGB")
                self.found += 1
                return image
            except (OSError, UnidentifiedImageError):
                pass
        self.missing.append(path)
        return None


def picture_tag() -> PngInfo:
    """The PNG text chunk that marks a ranked-list picture as ours (so it may be replaced)."""
    tag = PngInfo()
    tag.add_text(SOFTWARE_KEY, SOFTWARE)
    return tag


def is_our_picture(path: Path) -> bool:
    """Whether `path` is a PNG drawn by `render_ranklist` (tagged in its text chunk)."""
    try:
        with Image.open(path) as image:
            return str(getattr(image, "text", {}).get(SOFTWARE_KEY, "")).startswith(SOFTWARE)
    except (OSError, UnidentifiedImageError):
        return False


def render_ranklist(opts: RankOptions) -> RankResult:
    """Draw the ranked lists of the chosen queries into `opts.output` (PNG, atomic)."""
    source = Path(opts.source)
    if not source.is_file():
        raise ReidError(f"{source} does not exist (expected a feature bank or distance file)")
    with claim_output(Output(opts.output, "`reid visualize`", ours=is_our_picture,
                             inputs=[source], overwrite=opts.overwrite)):
        return _render(source, opts)


def _render(source: Path, opts: RankOptions) -> RankResult:
    with open_source(source, opts.retrieval, query_split=opts.query_split,
                     gallery_split=opts.gallery_split) as src:
        if isinstance(opts.queries, int):
            indices = list(range(min(opts.queries, len(src.query))))
        else:
            indices = list(opts.queries)
        if not indices:
            raise ReidError(f"{source} has no queries to draw")
        ranked = rank_source(src, indices, opts.k)
    loader = ImageLoader(source, opts.image_root)
    canvas = draw_ranklists(ranked, loader, opts.style)
    if loader.found == 0:
        where = (f"under {opts.image_root}" if opts.image_root is not None
                 else f"next to {source} or in {Path.cwd()}")
        raise ReidError(f"none of the images could be found {where} (first: "
                        f"{loader.missing[0]!r}); pass --image-root DIR, the folder the "
                        f"paths in {source.name} are relative to")
    if loader.missing:
        log.warning("%d of %d images could not be read and are drawn as grey tiles (first: %s)",
                    len(loader.missing), len(loader.missing) + loader.found, loader.missing[0])
    output = Path(opts.output)
    with atomic_path(output, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG", pnginfo=picture_tag())
    return RankResult(output, canvas.size, ranked, len(loader.missing))


def summary_line(result: RankResult) -> str:
    tops = [q.matches[0].kind.value for q in result.ranked if q.matches]
    correct = sum(t == "correct" for t in tops)
    return (f"wrote {os.fspath(result.path)} ({result.size[0]}x{result.size[1]}): "
            f"{len(result.ranked)} queries, top-1 correct for {correct}")
