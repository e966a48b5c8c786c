"""DDP on 2 CPU processes with gloo: batch split across ranks and synchronised weights.

What is and is not expected:
* every rank builds the same PK plan from the shared seed and trains on its contiguous
  half of each global batch, so the union of the ranks' batches is exactly the global
  batch a single process would draw;
* gradients are averaged across ranks, so the parameters stay identical on both ranks;
* the weights are NOT those of a single process on the full batch: BatchNorm (the BNNeck)
  normalises with the statistics of the local half batch, the batch-hard triplet loss mines
  within the local half, and each rank draws its own augmentation randomness. Likewise the
  BN running statistics differ between ranks after the last step (each updates them from
  its own half; DDP re-broadcasts rank 0's buffers at the start of every forward).
  `--sync-bn` is on, but torch's SyncBatchNorm runs on GPUs only: on CPU processes the
  BatchNorms stay per rank and rank 0 says so in one warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from _training_data import tiny_config, write_market

from reidcli.data import load_dataset
from reidcli.data.sampler import PKSampler
from reidcli.runtime.distributed import DistContext, sync_batchnorm
from reidcli.training import FinetuneConfig, Hooks, finetune

WORLD = 2


def _config(market: Path, out: Path) -> FinetuneConfig:
    return tiny_config(market, out, seed=11, sync_bn=True, tensorboard=True)


def _worker(rank: int, market: str, out: str, port: int, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    logging.basicConfig(filename=Path(dump, f"rank{rank}.log"), level=logging.WARNING)
    batches: list[dict] = []

    def on_batch(info) -> None:
        batches.append({"epoch": info.epoch, "step": info.step,
                        "indices": info.indices.tolist()})

    def on_epoch_end(info) -> None:
        if info.epoch == 2:
            state = {k: v.detach().clone() for k, v in info.model.state_dict().items()}
            torch.save(state, Path(dump, f"rank{rank}.pt"))

    finetune(_config(Path(market), Path(out)), Hooks(on_batch=on_batch, on_epoch_end=on_epoch_end))
    Path(dump, f"rank{rank}.json").write_text(json.dumps(batches))


def _param_names(run: Path) -> list[tuple[str, torch.Size]]:
    from reidcli.models import load_model

    model, _ = load_model(run)
    return [(name, p.shape) for name, p in model.named_parameters()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    market = write_market(tmp_path / "market", train_ids=8, test_ids=2)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    mp.spawn(_worker, args=(str(market), str(out), _free_port(), str(dump)),
             nprocs=WORLD, join=True)

    per_rank = [json.loads((dump / f"rank{r}.json").read_text()) for r in range(WORLD)]
    train = load_dataset(f"market1501:{market}").train
    reference = PKSampler([r.pid for r in train], p=4, k=2, seed=11)
    for epoch in (1, 2):
        reference.set_epoch(epoch)
        expected = reference.global_batches()
        got = [[b for b in batches if b["epoch"] == epoch] for batches in per_rank]
        assert [len(g) for g in got] == [len(expected)] * WORLD
        for step, batch in enumerate(expected):
            half = len(batch) // WORLD
            for rank in range(WORLD):
                assert got[rank][step]["indices"] == batch[rank * half:(rank + 1) * half]

    # Gradients are all-reduced: parameters are identical on both ranks. BN running
    # statistics are not (see the module docstring), so only parameters are compared.
    states = [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    params = {name for name, _ in _param_names(out)}
    assert params and all(name in states[0] for name in params)
    for name in params:
        assert torch.equal(states[0][name], states[1][name]), name
    running = [k for k in states[0] if k.endswith("running_mean")]
    assert running and any(not torch.equal(states[0][k], states[1][k]) for k in running)
    warnings = [(dump / f"rank{r}.log").read_text() for r in range(WORLD)]
    assert warnings[0].count("SyncBatchNorm needs CUDA") == 1
    assert "SyncBatchNorm" not in warnings[1]

    # Only rank 0 wrote: one metrics line per epoch, one run directory, one event file.
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1


def test_sync_batchnorm_conversion(caplog: pytest.LogCaptureFixture) -> None:
    from reidcli.models import ModelConfig, build_model

    def model() -> torch.nn.Module:
        torch.manual_seed(0)  # ICS stem (IBN + BatchNorm2d) and the BNNeck (BatchNorm1d)
        return build_model(ModelConfig(backbone="vit-tiny-test", img_size=(64, 32),
                                       stem="ics", num_classes=4))

    two = DistContext(rank=0, world_size=2)
    plain = model()
    bns = [n for n, m in plain.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 3
    neck_bias = plain.heads[0].bn.bias
    params = dict(plain.named_parameters())
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    converted = sync_batchnorm(plain, two, torch.device("cuda"))
    syncs = [n for n, m in converted.named_modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert set(bns) <= set(syncs) and len(syncs) == len(bns) + 1  # + the BNNeck
    assert not any(type(m) in (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
                   for m in converted.modules())
    # Same parameter tensors (the frozen BNNeck bias stays frozen), same state-dict keys.
    for name, p in converted.named_parameters():
        assert p is params[name], name
    assert converted.heads[0].bn.bias is neck_bias and not neck_bias.requires_grad
    assert converted.state_dict().keys() == state.keys()
    for k, v in converted.state_dict().items():
        assert torch.equal(v, state[k]), k

    # One process, or CPU processes (torch's SyncBatchNorm is GPU-only): unchanged.
    single = model()
    assert sync_batchnorm(single, DistContext(), torch.device("cuda")) is single
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in single.modules())
    with caplog.at_level("WARNING"):
        cpu = sync_batchnorm(single, two, torch.device("cpu"))
        sync_batchnorm(single, DistContext(rank=1, world_size=2), torch.device("cpu"))
    assert cpu is single and not any(isinstance(m, torch.nn.SyncBatchNorm) for m in cpu.modules())
    [record] = caplog.records  # rank 0 only
    assert "SyncBatchNorm needs CUDA" in record.getMessage()
