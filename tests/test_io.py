import pytest

from reidcli.utils.io import atomic_path, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_crash_mid_write_leaves_old_file_and_no_temp(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_temp_names_carry_host_and_pid_and_dead_writers_temps_are_removed(tmp_path) -> None:
    import os
    import subprocess
    import sys

    from reidcli.utils.io import _host, remove_orphans

    with atomic_path(tmp_path / "w.pt") as tmp:
        assert tmp.name.startswith(f".w.pt.{_host()}-{os.getpid()}.")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    names = {
        f".trainer.pt.{_host()}-{dead}.abcd_123.tmp": True,  # its process is gone
        f".trainer.pt.{_host()}-{os.getpid()}.abcd_123.tmp": False,  # a live writer
        f".trainer.pt.otherhost-{dead}.abcd_123.tmp": False,  # can't tell: another host
        ".trainer.pt.abcd_123.tmp": True,  # an older version's name for trainer.pt
        ".notes.txt.abcd_123.tmp": False,  # an older version's name, not asked for
        "trainer.pt": False,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_orphans(tmp_path, ("trainer.pt",))
    assert sorted(p.name for p in removed) == sorted(n for n, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["w.pt", *(n for n, gone in names.items() if not gone)])


@pytest.mark.parametrize(("spec", "dies"), [
    ("b", True), ("b:x", True), ("b:x@2", True), ("b:x@3", False), ("b:y", False), ("", False),
])
def test_crash_points_exit_hard_where_named(spec: str, dies: bool) -> None:
    import os
    import subprocess
    import sys

    from reidcli.utils.faults import CRASH_EXIT, ENV

    code = ("from reidcli.utils.faults import crash_point\n"
            "crash_point('a'); crash_point('b', 'x'); print('one', flush=True)\n"
            "crash_point('b', 'x'); print('two')\n")
    env = dict(os.environ, **{ENV: spec})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True)
    if not dies:
        assert result.returncode == 0 and result.stdout.split() == ["one", "two"]
        return
    assert result.returncode == CRASH_EXIT
    assert result.stdout.split() == (["one"] if spec.endswith("@2") else [])
    assert f"stopped at crash point b:x ({ENV}={spec})" in result.stderr
