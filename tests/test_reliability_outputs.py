"""Outputs under hostile conditions (issue 17, items 2, 3, 4, 7 and 16): an output that is an
input or a foreign file, two runs into one place, a full disk, a read-only folder, the umask.
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _cfs_data import write_proxy, write_source
from _training_data import tiny_config
from PIL import Image
from typer.testing import CliRunner

from reidcli.cli.app import app
from reidcli.errors import OutputError
from reidcli.inference.extract import ExtractOptions, extract_bank
from reidcli.retrieval import write_bank
from reidcli.retrieval.synthetic import SyntheticSpec, synthetic_splits
from reidcli.training import finetune
from reidcli.utils import diskerrors
from reidcli.utils.diskerrors import write_failure
from reidcli.utils.io import atomic_torch_save, atomic_write_text, current_umask
from reidcli.utils.lock import describe_holder, lock_path, output_lock
from reidcli.visualize import RankOptions, render_ranklist
from reidcli.visualize.ranklist import is_our_picture

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(result, *words: str) -> None:
    """Exit 1 with a one-line error (no traceback) that contains `words`."""
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "Traceback" not in result.output and "error:" in text, result.output
    for word in words:
        assert word in text, result.output


def _bank(path: Path, queries: int = 20, gallery: int = 60, dim: int = 8) -> Path:
    spec = SyntheticSpec(queries, gallery, 10, dim=dim, num_cams=3, noise=1.0, seed=0)
    write_bank(path, synthetic_splits(spec), attrs={"dataset": "synthetic"})
    return path


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bank(tmp_path_factory.mktemp("bank") / "bank.h5")


@pytest.fixture(scope="module")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_proxy(tmp_path_factory.mktemp("model") / "run")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LUPerson-style folder with a list file of its 8 images."""
    root = write_source(tmp_path_factory.mktemp("lup") / "lup", 8)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    (root / "list.txt").write_text("".join(f"{n}\n" for n in names))
    return root


# -- item 2: an output that is an input, or a file the command did not make ---------------

def test_rerank_refuses_its_own_bank_also_through_a_link(bank: Path, tmp_path: Path) -> None:
    before = _digest(bank)
    _refused(_invoke("rerank", bank, "-o", bank), "would overwrite the input")
    link = tmp_path / "link.h5"
    link.symlink_to(bank)
    _refused(_invoke("rerank", bank, "-o", link), "would overwrite the input")
    assert _digest(bank) == before and link.resolve() == bank.resolve()


def test_evaluate_json_refuses_its_source(bank: Path) -> None:
    before = _digest(bank)
    _refused(_invoke("evaluate", bank, "--json", bank), "--json", "would overwrite the input")
    assert _digest(bank) == before


def test_cfs_filter_refuses_to_write_over_its_source_list(source: Path, tmp_path: Path) -> None:
    listing = source / "list.txt"
    before = listing.read_text()
    s, t = write_proxy(tmp_path / "s", seed=0), write_proxy(tmp_path / "t", seed=1)
    result = _invoke("cfs-filter", "--source", f"luperson:{listing}", "--source-model", s,
                     "--target-model", t, "--keep", "0.5", "-o", listing, "--workers", "0",
                     "--device", "cpu")
    _refused(result, "would overwrite the input")
    assert listing.read_text() == before and not (source / "list.work").exists()


def test_rerank_replaces_its_own_files_but_not_foreign_ones(bank: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist.h5"
    assert _invoke("rerank", bank, "-o", out, "--device", "cpu").exit_code == 0
    # A second run replaces the distance file it made without being asked.
    assert _invoke("rerank", bank, "-o", out, "--device", "cpu", "--k1", "5").exit_code == 0
    foreign = tmp_path / "notes.h5"
    foreign.write_text("my notes\n")
    _refused(_invoke("rerank", bank, "-o", foreign, "--device", "cpu"), "--overwrite",
             "not written by `reid rerank`")
    assert foreign.read_text() == "my notes\n"
    assert _invoke("rerank", bank, "-o", foreign, "--device", "cpu",
                   "--overwrite").exit_code == 0
    assert foreign.read_bytes()[:4] == b"\x89HDF"


def test_evaluate_json_replaces_results_but_not_other_files(bank: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert _invoke("evaluate", bank, "--json", out, "--device", "cpu").exit_code == 0
    assert _invoke("evaluate", bank, "--json", out, "--device", "cpu").exit_code == 0
    other = tmp_path / "config.json"
    other.write_text('{"keep": true}\n')
    _refused(_invoke("evaluate", bank, "--json", other, "--device", "cpu"), "--overwrite")
    assert other.read_text() == '{"keep": true}\n'


def test_visualize_replaces_only_pictures_it_drew(bank: Path, tmp_path: Path) -> None:
    photo = tmp_path / "holiday.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(photo)
    before = _digest(photo)
    with pytest.raises(OutputError, match="--overwrite"):
        render_ranklist(RankOptions(source=bank, output=photo, queries=2))
    assert _digest(photo) == before and not is_our_picture(photo)
    # The tag it writes is what lets a later run replace its own picture.
    from PIL.PngImagePlugin import PngInfo

    tagged = PngInfo()
    tagged.add_text("Software", "reidcli visualize")
    Image.new("RGB", (8, 8)).save(tmp_path / "ours.png", pnginfo=tagged)
    assert is_our_picture(tmp_path / "ours.png")


def test_extract_refuses_the_checkpoint_as_output(model_run: Path) -> None:
    weights = model_run / "model.safetensors"
    before = _digest(weights)
    with pytest.raises(OutputError, match="would overwrite the input"):
        extract_bank(ExtractOptions(checkpoint=model_run, output=weights, images=model_run,
                                    workers=0, device="cpu", progress=False))
    assert _digest(weights) == before


def test_finetune_refuses_its_pretrained_run_and_foreign_folders(model_run: Path,
                                                                 tmp_path: Path) -> None:
    before = _digest(model_run / "model.safetensors")
    cfg = tiny_config(tmp_path / "market", model_run, pretrained=str(model_run))
    with pytest.raises(OutputError, match="would overwrite the input"):
        finetune(cfg)
    assert _digest(model_run / "model.safetensors") == before
    # A folder holding a config.toml that no run wrote is not a run directory to write into.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text("[server]\nport = 80\n")
    with pytest.raises(OutputError, match="not written by"):
        finetune(tiny_config(tmp_path / "market", mine))
    assert (mine / "config.toml").read_text() == "[server]\nport = 80\n"


# -- item 3: two runs into one place ------------------------------------------------------

@pytest.fixture
def holder() -> Iterator:
    """Start a process that holds the lock of a path; yields `hold(path) -> Popen`."""
    procs: list[subprocess.Popen] = []

    def hold(path: Path) -> subprocess.Popen:
        code = textwrap.dedent(f"""
            import sys, time
            from reidcli.utils.lock import output_lock
            with output_lock({str(path)!r}):
                print("locked", flush=True)
                time.sleep(120)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_run_fails_at_once_naming_the_holder(bank: Path, tmp_path: Path,
                                                      holder) -> None:
    out = tmp_path / "dist.h5"
    proc = holder(out)
    result = _invoke("rerank", bank, "-o", out, "--device", "cpu")
    _refused(result, "being written by another run", f"pid {proc.pid}",
             f"host {socket.gethostname()}", "since")
    assert not out.exists()
    # The kernel releases the lock of a killed holder: no stale lock to clean by hand.
    proc.kill()
    proc.wait()
    assert _invoke("rerank", bank, "-o", out, "--device", "cpu").exit_code == 0
    assert not lock_path(out).exists()


def test_a_run_directory_is_locked_for_the_run(tmp_path: Path, holder) -> None:
    run = tmp_path / "run"
    proc = holder(run)
    with pytest.raises(OutputError, match=f"pid {proc.pid}"):
        finetune(tiny_config(tmp_path / "market", run))
    assert not run.exists()


def test_every_spelling_of_an_output_shares_its_lock(tmp_path: Path, holder) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    proc = holder(tmp_path / "real" / "x.h5")
    for spelling in (tmp_path / "link" / "x.h5", tmp_path / "real" / ".." / "real" / "x.h5"):
        with pytest.raises(OutputError, match=f"pid {proc.pid}"), output_lock(spelling):
            pass


def test_locks_are_reentrant_within_a_process_and_removed_after(tmp_path: Path) -> None:
    out = tmp_path / "x.h5"
    with output_lock(out) as first, output_lock(out) as second:
        assert first == second == lock_path(out) and first.is_file()
        assert "pid" in describe_holder(first.read_text())
    assert not lock_path(out).exists()
    assert "another process" in describe_holder("")


# -- item 4: a full disk --------------------------------------------------------------------

def test_rerank_checks_free_space_first(bank: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diskerrors, "free_bytes", lambda folder: 1000)
    out = tmp_path / "out" / "dist.h5"
    _refused(_invoke("rerank", bank, "-o", out, "--device", "cpu"), "not enough space",
             "1000 B free", "needs about")
    assert list(out.parent.iterdir()) == []


def test_extract_checks_free_space_first(model_run: Path, source: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diskerrors, "free_bytes", lambda folder: 10)
    out = tmp_path / "bank.h5"
    with pytest.raises(OutputError, match="not enough space"):
        extract_bank(ExtractOptions(checkpoint=model_run, output=out, images=source,
                                    workers=0, device="cpu", progress=False))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("err", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("Can't write data (file write failed: time = x, filename = 'a.h5', file "
                 "descriptor = 3, errno = 28, error message = 'No space left on device')"),
    RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
])
def test_every_shape_of_a_full_disk_is_recognised(err: Exception, tmp_path: Path) -> None:
    problem = write_failure(err, tmp_path / "a.h5")
    assert problem is not None and "disk is full" in str(problem) and "a.h5" in str(problem)


def test_errors_about_other_files_are_not_blamed_on_the_output(tmp_path: Path) -> None:
    elsewhere = OSError(errno.EACCES, "Permission denied", "/data/input.h5")
    assert write_failure(elsewhere, tmp_path / "out.h5") is None
    assert write_failure(ValueError("bad"), tmp_path / "out.h5") is None


def _limited(size: int):
    """A subprocess set-up where files cannot grow beyond `size` bytes: writes fail with
    EFBIG (SIGXFSZ ignored), the way they fail with ENOSPC on a full disk."""
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return setup


def _run_limited(args: list[str], size: int, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(size),
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"})


def test_rerank_on_a_full_disk_is_one_line_not_a_crash(tmp_path: Path) -> None:
    # 300 x 3000 float32 distances (3.6 MB) cannot be written under a 1 MB limit.
    bank = _bank(tmp_path / "big.h5", queries=300, gallery=3000)
    out = tmp_path / "out"
    done = _run_limited([sys.executable, "-m", "reidcli", "rerank", str(bank), "-o",
                         str(out / "dist.h5"), "--device", "cpu", "--k1", "3", "--k2", "1"],
                        2**20, tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]  # HDF5 used to segfault (139) here
    assert "Traceback" not in done.stderr and "cannot write" in done.stdout + done.stderr
    assert list(out.iterdir()) == []


def test_hdf5_partial_writer_on_a_full_disk_exits_cleanly(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import numpy as np, sys
        from reidcli.errors import OutputError
        from reidcli.retrieval.bank import BankWriter
        try:
            with BankWriter("bank.h5", resume=True, keep_partial=True) as w:
                for i in range(w.rows_done.get("gallery", 0) // 64, 200):
                    w.append("gallery", np.ones((64, 256), np.float32), np.zeros(64),
                             np.zeros(64), [f"img{i}_{j}.jpg" for j in range(64)])
                    w.checkpoint()
        except OutputError as err:
            print("OutputError:", err)
            sys.exit(3)
    """)
    done = _run_limited([sys.executable, "-c", script], 2**20, tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr[-2000:]
    assert "bank.h5" in done.stdout and "Traceback" not in done.stderr
    # Only the committed chunks stay (no temporary file); with space the run completes.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bank.h5.partial"]
    assert not [p for p in (tmp_path / ".bank.h5.partial").iterdir() if ".tmp" in p.name]
    again = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    import h5py

    with h5py.File(tmp_path / "bank.h5") as f:
        assert f["gallery"]["feats"].shape[0] == 200 * 64
        assert f["gallery"]["paths"][-1].decode() == "img199_63.jpg"


def test_torch_save_on_a_full_disk_names_the_file(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, torch
        from reidcli.errors import OutputError
        from reidcli.utils.io import atomic_torch_save
        try:
            atomic_torch_save({"w": torch.zeros(1_000_000)}, "trainer.pt")
        except OutputError as err:
            print("OutputError:", err)
            sys.exit(3)
    """)
    done = _run_limited([sys.executable, "-c", script], 2**20, tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr[-2000:]
    assert "trainer.pt" in done.stdout and "file size limit" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_synth_on_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    done = _run_limited([sys.executable, "-m", "reidcli", "synth", "market", "out", "--ids",
                         "4", "--cams", "2", "--per-cam", "1"], 1024, tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "cannot write" in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


# -- item 7: a read-only output folder, in every writing command ---------------------------

def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int = errno.EROFS) -> None:
    """Make creating anything under `folder` fail with `code` (EROFS: a read-only mount;
    EACCES: no write permission), which chmod cannot do for root (the tests may run as)."""
    real_open, real_mkdir = os.open, os.mkdir

    def inside(path: object) -> bool:
        p = Path(os.path.abspath(os.fspath(path)))  # type: ignore[arg-type]
        return p == folder or folder in p.parents

    def refuse(path: object) -> OSError:
        return OSError(code, os.strerror(code), os.fspath(path))  # type: ignore

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):  # noqa: ANN001
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise refuse(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_mkdir(path, mode=0o777, *, dir_fd=None):  # noqa: ANN001
        if inside(path):
            raise refuse(path)
        return real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def _writing_commands(bank: Path, model_run: Path, source: Path, ro: Path) -> dict:
    tiny = ["--backbone", "vit-tiny-test", "--size", "64x32", "--epochs", "1",
            "--warmup-epochs", "0", "--workers", "0", "--device", "cpu"]
    return {
        "synth market": ["synth", "market", ro / "market", "--ids", "4", "--cams", "2"],
        "synth unlabeled": ["synth", "unlabeled", ro / "lup", "--images", "8"],
        "cfs-filter": ["cfs-filter", "--source", f"luperson:{source}", "--source-model",
                       model_run, "--target-model", model_run, "--keep", "0.5", "-o",
                       ro / "cfs.txt", "--workers", "0", "--device", "cpu"],
        "pretrain": ["pretrain", "--data", f"luperson:{source}", "-o", ro / "ssl",
                     "--batch-size", "4", *tiny],
        "finetune": ["finetune", "--data", f"market1501:{source}", "-o", ro / "run", *tiny],
        "extract": ["extract", "-c", model_run, "--images", source, "-o", ro / "bank.h5",
                    "--device", "cpu", "--workers", "0"],
        "evaluate": ["evaluate", bank, "--json", ro / "r.json", "--device", "cpu"],
        "rerank": ["rerank", bank, "-o", ro / "dist.h5", "--device", "cpu"],
        "visualize": ["visualize", bank, "-o", ro / "ranks.png"],
        "demo": ["demo", "--workdir", ro / "demo", "--quick", "--device", "cpu"],
    }


COMMANDS = ["synth market", "synth unlabeled", "cfs-filter", "pretrain", "finetune",
            "extract", "evaluate", "rerank", "visualize", "demo"]


CASES = [*((c, errno.EROFS, "read-only file system") for c in COMMANDS),
         *((c, errno.EACCES, "permission denied") for c in ("rerank", "finetune", "synth market"))]


@pytest.mark.parametrize(("command", "code", "said"), CASES)
def test_unwritable_output_folder_is_one_line(command: str, code: int, said: str, bank: Path,
                                              model_run: Path, source: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    args = _writing_commands(bank, model_run, source, ro)[command]
    _read_only(monkeypatch, ro, code)
    _refused(_invoke(*args), said, str(ro))
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 0555 folder anyway; "
                    "test_unwritable_output_folder_is_one_line simulates EROFS and EACCES")
@pytest.mark.parametrize("command", ["rerank", "evaluate", "synth market"])
def test_chmod_0555_output_folder_is_one_line(command: str, bank: Path, model_run: Path,
                                              source: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    args = _writing_commands(bank, model_run, source, ro)[command]
    ro.chmod(0o555)
    try:
        _refused(_invoke(*args), "permission denied")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# -- item 16: the umask ----------------------------------------------------------------------

@pytest.fixture
def umask() -> Iterator:
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_follow_the_umask(mask: int, mode: int, tmp_path: Path, umask) -> None:
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_torch_save({"x": 1}, tmp_path / "b.pt")
    for name in ("a.txt", "b.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_cli_outputs_are_0644_under_umask_022(bank: Path, tmp_path: Path, umask) -> None:
    umask(0o022)
    assert _invoke("rerank", bank, "-o", tmp_path / "d.h5", "--device", "cpu").exit_code == 0
    assert _invoke("evaluate", bank, "--json", tmp_path / "r.json").exit_code == 0
    for name in ("d.h5", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_bank_fixture_is_plausible(bank: Path) -> None:
    # Guards the fixtures above: a bank whose rerank would fail for other reasons would make
    # the refusal tests pass for the wrong reason.
    import h5py

    with h5py.File(bank) as f:
        assert f["query"]["feats"].shape == (20, 8) and np.isfinite(f["gallery"]["feats"][:]).all()
