"""Feature bank and distance file formats: round trips, validation, atomic and resumable writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from reidcli.errors import BankError
from reidcli.retrieval.bank import BankWriter, Split, read_bank, write_bank
from reidcli.retrieval.distfile import Labels, read_distances, write_distances
from reidcli.utils.partial_h5 import partial_path


def _split(name: str, n: int, dim: int = 8, seed: int = 0, views: bool = False) -> Split:
    rng = np.random.default_rng(seed)
    return Split(name, rng.standard_normal((n, dim)).astype(np.float32),
                 rng.integers(-1, 5, n), rng.integers(1, 4, n),
                 [f"{name}/ü_{i}.jpg" for i in range(n)],
                 rng.integers(0, 8, n) if views else None)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("lazy", [True, False])
def test_round_trip(tmp_path, dtype: str, lazy: bool) -> None:
    splits = {"query": _split("query", 5, views=True), "gallery": _split("gallery", 9, seed=1),
              "source": _split("source", 3, seed=2)}
    path = write_bank(tmp_path / "b.h5", splits, attrs={"model": "vit", "flip": True},
                      dtype=dtype)
    with read_bank(path, lazy=lazy) as bank:
        assert bank.attrs["format"] == "reid-feature-bank" and bank.attrs["version"] == 1
        assert bank.attrs["model"] == "vit" and bool(bank.attrs["flip"])
        assert "created" in bank.attrs
        assert set(bank.splits) == {"query", "gallery", "source"}
        for name, s in splits.items():
            got = bank[name]
            assert len(got) == len(s) and got.dim == 8
            assert np.array_equal(got.read_features(), s.feats.astype(dtype).astype(np.float32))
            assert np.array_equal(got.pids, s.pids) and np.array_equal(got.camids, s.camids)
            assert got.read_paths() == s.paths
        assert np.array_equal(bank.query.viewids, splits["query"].viewids)
        assert bank.gallery.viewids is None
        with h5py.File(path) as f:
            assert f["query/feats"].dtype == np.dtype(dtype)
            assert f["query/pids"].dtype == np.int64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.h5"]


def test_streaming_appends_and_chunked_reads(tmp_path) -> None:
    s = _split("gallery", 2500)
    with BankWriter(tmp_path / "b.h5") as w:
        for a in range(0, 2500, 700):
            w.append("gallery", s.feats[a:a + 700], s.pids[a:a + 700], s.camids[a:a + 700],
                     s.paths[a:a + 700])
    with read_bank(tmp_path / "b.h5") as bank:
        blocks = list(bank.gallery.iter_features(chunk_rows=1000))
        assert [a for a, _ in blocks] == [0, 1000, 2000]
        assert np.array_equal(np.concatenate([b for _, b in blocks]), s.feats)


def _write_raw(path, mutate) -> None:
    write_bank(path, {"query": _split("query", 4), "gallery": _split("gallery", 6)})
    with h5py.File(path, "r+") as f:
        mutate(f)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda f: f.attrs.__setitem__("format", "something"), "format attribute is 'something'"),
    (lambda f: f.attrs.__setitem__("version", 9), "version 9 is not supported"),
    (lambda f: f["gallery"].__delitem__("camids"), "split 'gallery' is missing dataset"),
    (lambda f: f["query/pids"].resize(3, axis=0), "split 'query' has 4 feature rows but pids"),
    (lambda f: f["gallery/feats"].__setitem__((slice(1, 3), 0), np.nan),
     "split 'gallery': 2 of 6 feature rows contain NaN or inf"),
])
def test_validation_errors_name_the_problem(tmp_path, mutate, message) -> None:
    path = tmp_path / "b.h5"
    _write_raw(path, mutate)
    with pytest.raises(BankError, match=message), read_bank(path) as bank:
        bank.query.read_features()
        bank.gallery.read_features()


def test_not_hdf5_and_missing_split(tmp_path) -> None:
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(BankError, match="not a readable HDF5"):
        read_bank(tmp_path / "x.h5")
    with pytest.raises(BankError, match="not found"):
        read_bank(tmp_path / "missing.h5")
    write_bank(tmp_path / "b.h5", {"query": _split("query", 2)})
    with read_bank(tmp_path / "b.h5") as bank, pytest.raises(BankError, match="no 'gallery'"):
        bank.gallery  # noqa: B018


def test_writer_rejects_bad_rows(tmp_path) -> None:
    with BankWriter(tmp_path / "b.h5") as w:
        with pytest.raises(BankError, match="3 feature rows but pids has 2"):
            w.append("q", np.zeros((3, 4)), [1, 2], [1, 1, 1], ["a", "b", "c"])
        with pytest.raises(BankError, match="split 'q': 1 feature rows contain NaN"):
            w.append("q", np.full((1, 4), np.inf), [1], [1], ["a"])
        w.append("q", np.zeros((1, 4)), [1], [1], ["a"])
        with pytest.raises(BankError, match="appending 5-dim features"):
            w.append("q", np.zeros((1, 5)), [1], [1], ["a"])


def test_crash_mid_write_leaves_no_file(tmp_path) -> None:
    dest = tmp_path / "b.h5"
    s = _split("gallery", 10)
    with pytest.raises(RuntimeError), BankWriter(dest) as w:
        w.append("gallery", s.feats, s.pids, s.camids, s.paths)
        assert not dest.exists()
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    # An existing bank is untouched by a failed rewrite.
    write_bank(dest, {"gallery": s})
    with pytest.raises(RuntimeError), BankWriter(dest) as w:
        w.append("gallery", s.feats[:2], s.pids[:2], s.camids[:2], s.paths[:2])
        raise RuntimeError("crash")
    with read_bank(dest) as bank:
        assert len(bank.gallery) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["b.h5"]


def test_resume_from_checkpoint(tmp_path) -> None:
    dest = tmp_path / "b.h5"
    q, g = _split("query", 6), _split("gallery", 20, seed=1)
    with pytest.raises(KeyboardInterrupt), BankWriter(dest, keep_partial=True) as w:
        w.append("query", q.feats, q.pids, q.camids, q.paths)
        w.append("gallery", g.feats[:8], g.pids[:8], g.camids[:8], g.paths[:8])
        assert w.checkpoint() == {"query": 6, "gallery": 8}
        w.append("gallery", g.feats[8:10], g.pids[8:10], g.camids[8:10], g.paths[8:10])
        raise KeyboardInterrupt  # rows after the last checkpoint are not kept
    assert not dest.exists() and partial_path(dest).exists()
    with BankWriter(dest, resume=True) as w:
        assert w.rows_done == {"query": 6, "gallery": 8}
        n = w.rows_done["gallery"]
        w.append("gallery", g.feats[n:], g.pids[n:], g.camids[n:], g.paths[n:])
    assert not partial_path(dest).exists()
    with read_bank(dest) as bank:
        assert np.array_equal(bank.gallery.read_features(), g.feats)
        assert bank.gallery.read_paths() == g.paths and len(bank.query) == 6


def test_resume_truncates_rows_after_last_checkpoint(tmp_path) -> None:
    dest = tmp_path / "b.h5"
    g = _split("gallery", 10)
    w = BankWriter(dest, keep_partial=True)
    w.append("gallery", g.feats[:4], g.pids[:4], g.camids[:4], g.paths[:4])
    w.checkpoint()
    w.append("gallery", g.feats[4:7], g.pids[4:7], g.camids[4:7], g.paths[4:7])
    w.abort()
    w = BankWriter(dest, resume=True)
    assert w.rows_done == {"gallery": 4}
    w.append("gallery", g.feats[4:], g.pids[4:], g.camids[4:], g.paths[4:])
    w.finish()
    with read_bank(dest) as bank:
        assert np.array_equal(bank.gallery.pids, g.pids)


def test_distance_file_round_trip_and_validation(tmp_path) -> None:
    rng = np.random.default_rng(0)
    dist = rng.random((5, 7)).astype(np.float32)
    q = Labels(np.arange(5), np.ones(5, np.int64), [f"q{i}" for i in range(5)])
    g = Labels(np.arange(7), np.ones(7, np.int64), [f"g{i}" for i in range(7)])
    path = write_distances(tmp_path / "d.h5", [(0, dist[:3]), (3, dist[3:])], q, g,
                           {"k1": 20, "metric": "cosine"})
    with read_distances(path) as df:
        assert np.array_equal(np.concatenate([b for _, b in df.iter_rows(2)]), dist)
        assert df.query.paths == q.paths and np.array_equal(df.gallery.pids, g.pids)
        assert df.attrs["format"] == "reid-distances" and df.attrs["k1"] == 20
    with pytest.raises(BankError, match="covered 3 of 5"):
        write_distances(tmp_path / "e.h5", [(0, dist[:3])], q, g)
    assert not (tmp_path / "e.h5").exists()
    with h5py.File(path, "r+") as f:
        del f["query/pids"]
        f["query/pids"] = np.arange(4)
    with pytest.raises(BankError, match="group 'query' has 4 pids"):
        read_distances(path)
    with pytest.raises(BankError, match="format attribute"):
        read_distances(write_bank(tmp_path / "b.h5", {"query": _split("query", 2)}))
