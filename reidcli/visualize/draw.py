"""Drawing ranked lists with Pillow: one row per query, the query then its top-k matches.

Every image sits in a coloured frame (blue query, green correct, red incorrect, orange
same-camera, grey junk) with two text lines under it: the distance to the query (rank for
the query itself) and the identity/camera, or what the protocol makes of the match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from PIL import Image, ImageDraw, ImageFont

from reidcli.visualize.ranking import LABELLED_KINDS, MatchKind, RankedQuery

RGB = tuple[int, int, int]

QUERY_COLOUR: RGB = (30, 100, 230)
KIND_COLOURS: dict[MatchKind, RGB] = {
    MatchKind.CORRECT: (20, 160, 40),
    MatchKind.WRONG: (215, 30, 30),
    MatchKind.SAME_CAMERA: (240, 150, 0),
    MatchKind.JUNK: (140, 140, 140),
    MatchKind.UNLABELLED: (90, 90, 110),
}
KIND_LABELS: dict[MatchKind, str] = {
    MatchKind.CORRECT: "correct",
    MatchKind.WRONG: "incorrect",
    MatchKind.SAME_CAMERA: "same camera (ignored)",
    MatchKind.JUNK: "junk (ignored)",
    MatchKind.UNLABELLED: "match (unlabelled)",
}
BACKGROUND: RGB = (255, 255, 255)
TEXT: RGB = (20, 20, 20)
MISSING: RGB = (200, 200, 200)


@dataclass(frozen=True)
class TileStyle:
    """Sizes in pixels; the image of every tile is resized to `tile` (H, W)."""

    tile: tuple[int, int] = (128, 64)
    border: int = 4
    label_height: int = 26
    pad: int = 6
    gap: int = 18
    """Extra space between the query column and the first match."""
    margin: int = 8
    header: int = 22
    """Legend line at the top."""


@dataclass(frozen=True)
class Layout:
    """Where each tile goes for `rows` queries of `columns` matches each."""

    style: TileStyle
    rows: int
    columns: int
    min_width: int = 0

    @property
    def cell(self) -> tuple[int, int]:
        """(width, height) of one framed tile with its label."""
        h, w = self.style.tile
        b = self.style.border
        return w + 2 * b, h + 2 * b + self.style.label_height

    @property
    def size(self) -> tuple[int, int]:
        s = self.style
        cw, ch = self.cell
        width = 2 * s.margin + cw + s.gap + self.columns * cw + max(0, self.columns - 1) * s.pad
        height = 2 * s.margin + s.header + self.rows * ch + max(0, self.rows - 1) * s.pad
        return max(width, self.min_width), height

    def frame_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the frame; column 0 is the query, 1..k the matches."""
        s = self.style
        cw, ch = self.cell
        h, _ = s.tile
        left = s.margin + (0 if column == 0 else cw + s.gap + (column - 1) * (cw + s.pad))
        top = s.margin + s.header + row * (ch + s.pad)
        return left, top, left + cw, top + h + 2 * s.border


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _fit(text: str, width: int, draw: ImageDraw.ImageDraw, font) -> str:
    """Shorten `text` with an ellipsis so it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _legend_items(kinds: Sequence[MatchKind]) -> list[tuple[RGB, str]]:
    return [(QUERY_COLOUR, "query"), *((KIND_COLOURS[k], KIND_LABELS[k]) for k in kinds)]


def legend_width(style: TileStyle, kinds: Sequence[MatchKind] = LABELLED_KINDS) -> int:
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = _font()
    swatch = style.header - 10
    return 2 * style.margin + sum(swatch + 4 + int(draw.textlength(label, font=font)) + 14
                                  for _, label in _legend_items(kinds))


def _draw_legend(draw: ImageDraw.ImageDraw, style: TileStyle, font,
                 kinds: Sequence[MatchKind]) -> None:
    x, y = style.margin, style.margin
    swatch = style.header - 10
    for colour, label in _legend_items(kinds):
        draw.rectangle([x, y + 2, x + swatch, y + 2 + swatch], fill=colour)
        x += swatch + 4
        draw.text((x, y + 2), label, fill=TEXT, font=font)
        x += int(draw.textlength(label, font=font)) + 14


def _paste_tile(canvas: Image.Image, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
                image: Image.Image | None, colour: RGB, lines: Sequence[str], style: TileStyle,
                font) -> None:
    left, top, right, bottom = box
    draw.rectangle([left, top, right - 1, bottom - 1], fill=colour)
    h, w = style.tile
    inner = (left + style.border, top + style.border)
    if image is None:
        draw.rectangle([inner[0], inner[1], inner[0] + w - 1, inner[1] + h - 1], fill=MISSING)
        draw.text((inner[0] + 2, inner[1] + h // 2 - 6), _fit("missing", w - 4, draw, font),
                  fill=TEXT, font=font)
    else:
        canvas.paste(image.resize((w, h), Image.Resampling.BICUBIC), inner)
    y = bottom + 1
    for line in lines:
        draw.text((left, y), _fit(line, right - left, draw, font), fill=TEXT, font=font)
        y += style.label_height // 2


def format_distance(distance: float) -> str:
    # Three decimals hide the differences between the near-identical features of a barely
    # trained model; small values switch to scientific notation.
    return f"{distance:.3f}" if distance == 0 or abs(distance) >= 0.01 else f"{distance:.1e}"


def _match_lines(distance: float, kind: MatchKind, pid: int, camid: int,
                 path: str) -> list[str]:
    text = format_distance(distance)
    if kind is MatchKind.UNLABELLED:
        return [text, PurePath(path).name]
    if kind is MatchKind.JUNK:
        return [text, "junk"]
    if kind is MatchKind.SAME_CAMERA:
        return [text, "same cam"]
    return [text, f"id {pid} c{camid}"]


def draw_ranklists(
    ranked: Sequence[RankedQuery],
    load: Callable[[str], Image.Image | None],
    style: TileStyle = TileStyle(),
) -> Image.Image:
    """The picture of `ranked`; `load(path)` returns an RGB image or None when missing."""
    columns = max((len(r.matches) for r in ranked), default=0)
    unlabelled = all(m.kind is MatchKind.UNLABELLED for r in ranked for m in r.matches)
    kinds = (MatchKind.UNLABELLED,) if unlabelled and columns else LABELLED_KINDS
    layout = Layout(style, len(ranked), columns, legend_width(style, kinds))
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    _draw_legend(draw, style, font, kinds)
    for row, query in enumerate(ranked):
        who = PurePath(query.path).name if unlabelled else f"id {query.pid} c{query.camid}"
        _paste_tile(canvas, draw, layout.frame_box(row, 0), load(query.path), QUERY_COLOUR,
                    [f"query #{query.index}", who], style, font)
        for col, match in enumerate(query.matches, start=1):
            _paste_tile(canvas, draw, layout.frame_box(row, col), load(match.path),
                        KIND_COLOURS[match.kind],
                        _match_lines(match.distance, match.kind, match.pid, match.camid,
                                     match.path),
                        style, font)
    return canvas
