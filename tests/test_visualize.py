"""`reid visualize`: ranked-list pictures from a tiny bank and distance file written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from reidcli.cli.visualize import visualize
from reidcli.errors import ReidError
from reidcli.retrieval import Labels, write_bank, write_distances
from reidcli.retrieval.bank import Split
from reidcli.visualize import (
    MatchKind,
    RankOptions,
    TileStyle,
    parse_queries,
    rank_queries,
    render_ranklist,
)
from reidcli.visualize.draw import KIND_COLOURS, QUERY_COLOUR, Layout, legend_width

STYLE = TileStyle(tile=(32, 16))
K = 6

# Gallery of query 0 (pid 1, camera 0), nearest first by construction of the features:
# same pid other camera, same pid same camera, junk, a stranger, a distractor (pid 0), ...
GALLERY = [  # (pid, camid)
    (1, 1), (1, 0), (-1, 1), (2, 1), (0, 2), (3, 0), (2, 0), (3, 1),
]
EXPECTED_Q0 = [MatchKind.CORRECT, MatchKind.SAME_CAMERA, MatchKind.JUNK, MatchKind.WRONG,
               MatchKind.WRONG, MatchKind.WRONG]
QUERIES = [(1, 0), (2, 0), (3, 1)]


def _image(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 40), colour).save(path)


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """(bank with relative image paths, image root)."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    dim = 8
    base = np.eye(dim, dtype=np.float32)[0]
    q_feats = np.stack([base, np.eye(dim, dtype=np.float32)[1], np.eye(dim, dtype=np.float32)[2]])
    # Gallery item j sits at an angle growing with j from query 0's feature.
    g_feats = np.stack([base + 0.15 * (j + 1) * np.eye(dim, dtype=np.float32)[3 + j % 5]
                        + 0.01 * rng.standard_normal(dim).astype(np.float32) * (j > 0)
                        for j in range(len(GALLERY))])
    q_paths, g_paths = [], []
    for i, (pid, cam) in enumerate(QUERIES):
        q_paths.append(f"query/{pid:04d}_c{cam + 1}_{i}.png")
        _image(root / q_paths[-1], (200, 40 * i, 40))
    for j, (pid, cam) in enumerate(GALLERY):
        g_paths.append(f"gallery/{pid:04d}_c{cam + 1}_{j}.png")
        _image(root / g_paths[-1], (30 * j, 120, 200))
    bank = tmp_path / "bank.h5"
    write_bank(bank, {
        "query": Split("query", q_feats, np.array([p for p, _ in QUERIES]),
                       np.array([c for _, c in QUERIES]), q_paths),
        "gallery": Split("gallery", g_feats.astype(np.float32),
                         np.array([p for p, _ in GALLERY]), np.array([c for _, c in GALLERY]),
                         g_paths),
    })
    return bank, root


def _expected_size(rows: int, columns: int, style: TileStyle) -> tuple[int, int]:
    h, w = style.tile
    cw, ch = w + 2 * style.border, h + 2 * style.border + style.label_height
    width = 2 * style.margin + cw + style.gap + columns * cw + (columns - 1) * style.pad
    height = 2 * style.margin + style.header + rows * ch + (rows - 1) * style.pad
    return max(width, legend_width(style)), height


def test_ranking_classifies_matches(tiny: tuple[Path, Path]) -> None:
    bank, _ = tiny
    (q0,) = rank_queries(bank, [0], K)
    assert [m.kind for m in q0.matches] == EXPECTED_Q0
    assert [m.gallery_index for m in q0.matches] == list(range(K))
    distances = [m.distance for m in q0.matches]
    assert distances == sorted(distances)


def test_picture_size_and_tiles(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    bank, root = tiny
    out = tmp_path / "ranks.png"
    result = render_ranklist(RankOptions(source=bank, output=out, queries=2, k=K,
                                         image_root=root, style=STYLE))
    with Image.open(out) as img:
        assert img.format == "PNG"
        picture = img.convert("RGB")
    assert picture.size == result.size == _expected_size(2, K, STYLE)
    assert result.missing == 0
    layout = Layout(STYLE, 2, K, legend_width(STYLE))
    frames = [(r, c) for r in range(2) for c in range(K + 1)]
    assert len(frames) == 2 * (K + 1)
    for row, col in frames:
        left, top, right, bottom = layout.frame_box(row, col)
        assert right <= picture.width and bottom <= picture.height
        border = picture.getpixel((left + 1, top + 1))
        if col == 0:
            assert border == QUERY_COLOUR
        else:
            kind = result.ranked[row].matches[col - 1].kind
            assert border == KIND_COLOURS[kind], (row, col, kind)
        # The image itself is pasted inside the frame.
        inner = picture.getpixel((left + STYLE.border + 4, top + STYLE.border + 4))
        assert inner not in (QUERY_COLOUR, *KIND_COLOURS.values())
    # Nothing is drawn to the right of the last tile: K matches, not more.
    last = layout.frame_box(0, K)
    strip = picture.crop((last[2] + 1, last[1], picture.width, last[3]))
    assert {colour for _, colour in strip.getcolors(maxcolors=1 << 20)} == {(255, 255, 255)}
    # Row 0 holds the known sequence of colours.
    colours = [picture.getpixel((layout.frame_box(0, c)[0] + 1, layout.frame_box(0, c)[1] + 1))
               for c in range(1, K + 1)]
    assert colours == [KIND_COLOURS[k] for k in EXPECTED_Q0]


def test_query_indices_and_distance_file(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    bank, root = tiny
    from reidcli.retrieval.bank import read_bank

    with read_bank(bank, lazy=False) as b:
        q, g = b.query, b.gallery
        qf = q.read_features() / np.linalg.norm(q.read_features(), axis=1, keepdims=True)
        gf = g.read_features() / np.linalg.norm(g.read_features(), axis=1, keepdims=True)
        dist = (2 - 2 * qf @ gf.T).astype(np.float32)
        dist_path = write_distances(
            tmp_path / "dist.h5", [(0, dist)], Labels(q.pids, q.camids, q.read_paths()),
            Labels(g.pids, g.camids, g.read_paths()), {"metric": "cosine"})
    out = tmp_path / "d.png"
    result = render_ranklist(RankOptions(source=dist_path, output=out, queries=[2, 0], k=3,
                                         image_root=root, style=STYLE))
    assert [r.index for r in result.ranked] == [2, 0]
    assert result.size == _expected_size(2, 3, STYLE)
    from_bank = rank_queries(bank, [2, 0], 3)
    assert [[m.gallery_index for m in r.matches] for r in result.ranked] == \
        [[m.gallery_index for m in r.matches] for r in from_bank]


def test_missing_images_need_image_root(tiny: tuple[Path, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bank, _ = tiny
    monkeypatch.chdir(tmp_path / "images" / "query")  # not where the paths are relative to
    with pytest.raises(ReidError, match="--image-root"):
        render_ranklist(RankOptions(source=bank, output=tmp_path / "x.png", queries=1, k=2))
    assert not (tmp_path / "x.png").exists()


def test_bad_query_selection(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    bank, root = tiny
    with pytest.raises(ReidError, match="query index 7"):
        render_ranklist(RankOptions(source=bank, output=tmp_path / "x.png", queries=[0, 7],
                                    image_root=root))
    assert parse_queries("5") == 5
    assert parse_queries("3,17") == [3, 17]
    assert parse_queries("4,") == [4]
    for bad in ("0", "a", "-1,2", ","):
        with pytest.raises(ReidError):
            parse_queries(bad)


def test_cli(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    bank, root = tiny
    app = typer.Typer()
    app.command()(visualize)
    out = tmp_path / "cli.png"
    res = CliRunner().invoke(app, [str(bank), "--queries", "0,1", "-k", "4", "--image-root",
                                   str(root), "--tile", "32x16", "-o", str(out)])
    assert res.exit_code == 0, res.output
    with Image.open(out) as img:
        assert img.size == _expected_size(2, 4, STYLE)
