"""`extract --onnx`, `Embedder` and `reid search` on tiny models and images written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _deploy_data import make_run, write_gallery
from PIL import Image
from typer.testing import CliRunner

from reidcli import Embedder
from reidcli.cli.app import app
from reidcli.deploy.export import ExportOptions, export_onnx
from reidcli.deploy.search import SearchOptions, search
from reidcli.errors import ReidError
from reidcli.inference.extract import ExtractOptions, extract_bank
from reidcli.retrieval import evaluate_path, read_bank


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    """(run directory, its exported graph): the SIE + JPM + overlapping-stride ViT."""
    root = tmp_path_factory.mktemp("model")
    run = make_run(root / "run", "vit-sie-jpm")
    export_onnx(ExportOptions(run, root / "m.onnx"))
    return run, root / "m.onnx"


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    """A Market-1501 layout: 4 identities, the query from camera 1, the gallery from 1-3."""
    root = tmp_path_factory.mktemp("market")
    rng = np.random.default_rng(3)
    from _deploy_data import jitter, person

    for pid in range(1, 5):
        look = person(rng)
        for cam in range(1, 4):
            for folder in ("query", "bounding_box_test", "bounding_box_train"):
                if folder == "query" and cam > 1:
                    continue
                path = root / folder / f"{pid:04d}_c{cam}s1_{pid * 10 + cam:06d}_01.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(jitter(rng, look, 40)).save(path)
    return root


def _extract(market: Path, out: Path, **kw) -> Path:
    extract_bank(ExtractOptions(output=out, data=f"market1501:{market}", batch_size=4,
                                workers=0, device="cpu", progress=False, **kw))
    return out


def test_extract_onnx_bank_equals_torch_bank(model, market: Path, tmp_path: Path) -> None:
    run, graph = model
    torch_bank = _extract(market, tmp_path / "t.h5", checkpoint=run)
    onnx_bank = _extract(market, tmp_path / "o.h5", checkpoint=None, onnx=graph)
    with read_bank(torch_bank) as t, read_bank(onnx_bank) as o:
        assert o.attrs["model"] == "vit-tiny-test" and o.attrs["checkpoint"].endswith("m.onnx")
        for split in ("query", "gallery"):
            assert o[split].read_paths() == t[split].read_paths()
            np.testing.assert_array_equal(o[split].camids, t[split].camids)
            want = t[split].read_features()
            np.testing.assert_allclose(o[split].read_features(), want,
                                       atol=1e-4 * np.abs(want).max())
    rt, ro = evaluate_path(torch_bank), evaluate_path(onnx_bank)
    assert 0 < rt.mAP < 1  # a random model: not a trivial ranking either way
    assert (ro.mAP, ro.rank1, ro.mINP) == pytest.approx((rt.mAP, rt.rank1, rt.mINP), abs=1e-9)
    flipped = _extract(market, tmp_path / "of.h5", checkpoint=None, onnx=graph, flip=True)
    torch_flipped = _extract(market, tmp_path / "tf.h5", checkpoint=run, flip=True)
    with read_bank(flipped) as o, read_bank(torch_flipped) as t:
        want = t["gallery"].read_features()
        np.testing.assert_allclose(o["gallery"].read_features(), want,
                                   atol=1e-4 * np.abs(want).max())


def test_embedder_backends_and_inputs_agree(model, market: Path, tmp_path: Path) -> None:
    run, graph = model
    paths = sorted(str(p) for p in (market / "bounding_box_test").glob("*.jpg"))[:5]
    bank = _extract(market, tmp_path / "t.h5", checkpoint=run)
    with read_bank(bank) as b:
        rows = [b["gallery"].read_paths().index(p) for p in paths]
        want, bank_cams = b["gallery"].read_features()[rows], b["gallery"].camids[rows]
    from_run = Embedder.from_run(run, device="cpu", batch_size=2)
    from_onnx = Embedder.from_onnx(graph, device="cpu")
    assert from_run.dim == from_onnx.dim == want.shape[1]
    # Paths, PIL images and arrays; batches of 2 and of 64; the bank's cameras.
    got_paths = from_run.embed(paths, camids=bank_cams)
    np.testing.assert_allclose(got_paths, want, atol=1e-5 * np.abs(want).max())
    pil = [Image.open(p) for p in paths]
    np.testing.assert_allclose(from_onnx.embed(pil, camids=bank_cams), want,
                               atol=1e-4 * np.abs(want).max())
    arrays = np.stack([np.asarray(im.convert("RGB")) for im in pil])
    np.testing.assert_allclose(from_onnx.embed(arrays), from_onnx.embed(pil), atol=1e-6)
    one = from_onnx.embed(arrays[0])
    assert one.shape == (1, want.shape[1]) and one.dtype == np.float32
    unknown = from_run.embed(paths)  # no ids: the mean camera, as -1 in a bank
    np.testing.assert_allclose(from_onnx.embed(paths, camids=-1), unknown,
                               atol=1e-4 * np.abs(want).max())
    assert not np.allclose(unknown, got_paths)
    with pytest.raises(ReidError, match="2 ids for 5 images"):
        from_run.embed(paths, camids=[0, 1])
    assert from_run.embed([]).shape == (0, want.shape[1])


def test_search_ranks_the_same_identity_first(model, tmp_path: Path) -> None:
    run, graph = model
    looks = write_gallery(tmp_path / "gallery", ids=4, per_id=2)
    rng = np.random.default_rng(9)
    from _deploy_data import jitter

    query = tmp_path / "q" / "0003_c3_q.png"
    query.parent.mkdir()
    Image.fromarray(jitter(rng, looks[3])).save(query)
    opts = SearchOptions(queries=query, gallery=tmp_path / "gallery", checkpoint=run, k=4,
                         json=tmp_path / "out" / "r.json", picture=tmp_path / "out" / "r.png",
                         cam_regex=r"_c(?P<cam>\d)_", device="cpu", progress=False)
    first = search(opts)
    top = [Path(m.path).name[:4] for m in first.ranked[0].matches]
    assert top[0] == "0003" and len(top) == 4
    assert first.ranked[0].camid == 2 and not first.bank_reused
    assert first.bank == tmp_path / "out" / "gallery.gallery.h5"
    with read_bank(first.bank) as bank:
        assert sorted(set(bank["gallery"].camids.tolist())) == [0, 1]
    saved = json.loads((tmp_path / "out" / "r.json").read_text())
    assert [m["path"] for m in saved["queries"][0]["matches"]] == \
        [m.path for m in first.ranked[0].matches]
    assert saved["queries"][0]["matches"][0]["rank"] == 1
    with Image.open(tmp_path / "out" / "r.png") as pic:
        assert pic.width > 5 * 64 and pic.height > 128
    stamp = first.bank.stat().st_mtime_ns
    again = search(opts)
    assert again.bank_reused and first.bank.stat().st_mtime_ns == stamp
    # The exported graph ranks alike, reusing the run's bank (same weights).
    from_onnx = search(SearchOptions(queries=query.parent, gallery=first.bank, onnx=graph, k=4,
                                     device="cpu", rerank=True, progress=False))
    assert Path(from_onnx.ranked[0].matches[0].path).name[:4] == "0003"


def test_search_errors_name_the_file(model, tmp_path: Path) -> None:
    run, _ = model
    write_gallery(tmp_path / "gallery", ids=2, per_id=1)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(ReidError, match="broken.jpg"):
        search(SearchOptions(queries=broken, gallery=tmp_path / "gallery", checkpoint=run,
                             save_bank=tmp_path / "b.h5", device="cpu", progress=False))
    (tmp_path / "empty").mkdir()
    query = next((tmp_path / "gallery").iterdir())
    with pytest.raises(ReidError, match="gallery folder .*empty holds no images"):
        search(SearchOptions(queries=query, gallery=tmp_path / "empty", checkpoint=run,
                             device="cpu", progress=False))
    other = make_run(tmp_path / "other", "vit-sie-jpm", seed=1)
    bank = tmp_path / "b2.h5"
    search(SearchOptions(queries=query, gallery=tmp_path / "gallery", checkpoint=run,
                         save_bank=bank, device="cpu", progress=False))
    with pytest.raises(ReidError, match="extracted with another model"):
        search(SearchOptions(queries=query, gallery=bank, checkpoint=other, device="cpu",
                             progress=False))


def test_search_cli(model, tmp_path: Path) -> None:
    run, graph = model
    write_gallery(tmp_path / "gallery", ids=3, per_id=2)
    query = tmp_path / "gallery" / "0002_c1_0.png"
    args = ["search", str(query), "--gallery", str(tmp_path / "gallery"), "--onnx", str(graph),
            "-k", "3", "--json", str(tmp_path / "r.json"), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "0002_c1_0.png" in res.output and "wrote gallery bank" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["queries"][0]["matches"][0][
        "distance"] == pytest.approx(0.0, abs=1e-5)  # the query is in the gallery
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "reused gallery bank" in res.output
    res = CliRunner().invoke(app, ["search", str(query), "--gallery", str(tmp_path / "gallery"),
                                   "-c", str(run), "--onnx", str(graph)])
    assert res.exit_code == 1 and "exactly one of" in res.output


def test_tracker_example_in_the_docs_runs(model) -> None:
    _, graph = model
    text = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    code = text.split("A tracker that keeps", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(code.replace("market.onnx", str(graph)), scope)  # noqa: S102 (our own doc)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    boxes = [(10, 20, 60, 140), (200, 50, 260, 190)]
    assert scope["update"](frame, boxes, [1, 2]) == {}
    sims = scope["update"](frame, boxes, [1, 2])
    assert sims[1][0] == pytest.approx(1.0, abs=1e-5) and sims[2][1] == pytest.approx(1.0, abs=1e-5)
    assert sims[1][1] < 0.9999


def test_search_outputs_never_replace_an_input_or_a_foreign_file(model, tmp_path: Path) -> None:
    run, _ = model
    write_gallery(tmp_path / "gallery", ids=2, per_id=1)
    query = next((tmp_path / "gallery").iterdir())
    before = query.read_bytes()
    base = dict(queries=query, gallery=tmp_path / "gallery", checkpoint=run,
                save_bank=tmp_path / "b.h5", device="cpu", progress=False)
    with pytest.raises(ReidError, match="input"):
        search(SearchOptions(**base, picture=query))
    assert query.read_bytes() == before
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    with pytest.raises(ReidError, match="--overwrite"):
        search(SearchOptions(**base, json=notes))
    assert notes.read_text() == '{"mine": 1}'
    search(SearchOptions(**base, json=notes, overwrite=True))
    search(SearchOptions(**base, json=notes, picture=tmp_path / "r.png"))  # ours: replaced
    assert "queries" in json.loads(notes.read_text())
    search(SearchOptions(**base, picture=tmp_path / "r.png"))  # a picture search drew
