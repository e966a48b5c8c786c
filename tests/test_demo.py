"""`reid demo` pieces: stamps, printed commands, the work directory, reuse and the skipped
cfs-filter step (on a plan far smaller than `--quick`)."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console

from reidcli.demo import QUICK, DemoOptions, run_demo
from reidcli.demo import stages as demo_stages
from reidcli.demo.command import Command
from reidcli.demo.runner import MARKER, prepare_workdir
from reidcli.demo.stamps import StampStore, digest
from reidcli.errors import ReidError

TINY = dataclasses.replace(
    QUICK, name="tiny", ids=12, cams=2, per_cam=2, unlabeled_images=48, proxy_epochs=1,
    proxy_sample=24, pretrain_epochs=1, pretrain_batch=16, out_dim=64, head_hidden=32,
    head_bottleneck=16, finetune_epochs=1, finetune_warmup=0, batch=(4, 2), show_queries=2,
    show_k=3, adapt_epochs=1, adapt_iters=2, adapt_min_samples=2, adapt_k1=4, adapt_eps=0.45,
)


def test_digest_is_canonical() -> None:
    assert digest({"a": 1, "b": (1, 2)}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


def test_stamps(tmp_path: Path) -> None:
    store = StampStore(tmp_path)
    inputs = {"command": "reid x", "after": ["abc"]}
    assert store.finished("s", inputs) is None and not store.interrupted("s", inputs)
    store.started("s", inputs)
    assert store.interrupted("s", inputs) and store.finished("s", inputs) is None
    assert not store.interrupted("s", {**inputs, "after": ["other"]})
    store.done("s", inputs, {"mAP": 0.5}, 1.5)
    stamp = store.finished("s", inputs)
    assert stamp is not None and stamp.result == {"mAP": 0.5} and stamp.seconds == 1.5
    assert store.finished("s", {**inputs, "command": "reid y"}) is None
    store.path("s").write_text("{not json")
    assert store.finished("s", inputs) is None


def test_command_text_and_values() -> None:
    cmd = (Command("finetune").opt("--data", "data", "market1501:a b").opt("--size", "size",
                                                                            (64, 32))
           .opt("--lr", "lr", 0.001).opt("--pretrained", "pretrained", None)
           .opt("--batch", None, (16, 4)).switch("--resume", "resume"))
    assert cmd.text == ("reid finetune --data 'market1501:a b' --size 64x32 --lr 0.001 "
                        "--batch 16x4 --resume")
    assert cmd.values == {"data": "market1501:a b", "size": (64, 32), "lr": 0.001,
                          "resume": True}


def test_workdir_guard(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(ReidError, match="not made by `reid demo`"):
        prepare_workdir(foreign, fresh=True, plan=TINY)
    assert (foreign / "thesis.tex").exists()
    work = tmp_path / "demo"
    prepare_workdir(work, fresh=False, plan=TINY)
    (work / "runs").mkdir()
    prepare_workdir(work, fresh=True, plan=TINY)
    assert sorted(p.name for p in work.iterdir()) == [MARKER]


def _run(work: Path, **kw) -> tuple[object, str]:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False)
    result = run_demo(DemoOptions(workdir=work, plan=TINY, device="cpu", progress=False, **kw),
                      console=console)
    return result, out.getvalue()


@pytest.mark.slow
def test_tiny_demo_reuses_stages_and_reports_missing_cfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    monkeypatch.setattr(demo_stages, "cfs_unavailable_reason",
                        lambda: "reidcli.selection.pipeline cannot be imported (test)")
    work = tmp_path / "reid-demo"
    result, text = _run(work)
    assert result.cfs_skipped is not None
    assert "cfs-filter step skipped" in text
    assert not (work / "cfs").exists()
    assert "$ reid pretrain --recipe" in text and "--subset" not in text
    for needle in ("$ reid synth market", "$ reid finetune", "$ reid extract",
                   "$ reid evaluate", "--rerank", "$ reid visualize", "--unsupervised",
                   "--camera-norm", "data/second-world"):
        assert needle in text, needle
    assert all(math.isfinite(v) for row in result.rows
               for s in (row.plain, row.reranked) for v in (s.mAP, s.rank1, s.mINP))
    assert result.picture.is_file() and str(result.picture) in text.replace("\n", "")
    assert not any(o.reused for o in result.outcomes)

    again, text2 = _run(work)
    assert again.outcomes and all(o.reused for o in again.outcomes)
    assert "(reused: inputs unchanged)" in text2
    assert again.rows == result.rows

    # A changed fine-tuning schedule reruns fine-tuning and what follows, not the data.
    changed = dataclasses.replace(TINY, finetune_lr=2e-3)
    out = io.StringIO()
    third = run_demo(DemoOptions(workdir=work, plan=changed, device="cpu", progress=False),
                     console=Console(file=out, width=200))
    reused = {o.name: o.reused for o in third.outcomes}
    assert reused["synth_market"] and reused["pretrain"] and reused["synth_second_world"]
    assert not reused["finetune_random"] and not reused["evaluate_pretrained-rerank"]
    assert not reused["finetune_adapted"] and not reused["evaluate_transfer"]


def test_cli_passes_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from reidcli.cli import demo as demo_cli

    seen: list[DemoOptions] = []
    monkeypatch.setattr(demo_cli, "run_demo", seen.append)
    app = typer.Typer()
    app.command()(demo_cli.demo)
    res = CliRunner().invoke(app, ["--quick", "--fresh", "-w", str(tmp_path / "w"),
                                   "--device", "cpu", "-j", "0"])
    assert res.exit_code == 0, res.output
    (opts,) = seen
    assert (opts.quick, opts.fresh, opts.workdir, opts.device, opts.workers) == \
        (True, True, tmp_path / "w", "cpu", 0)
