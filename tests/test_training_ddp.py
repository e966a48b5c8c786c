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
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from _training_data import tiny_config, write_market

from reidcli.data import load_dataset
from reidcli.data.sampler import PKSampler
from reidcli.training import FinetuneConfig, Hooks, finetune

WORLD = 2


def _config(market: Path, out: Path) -> FinetuneConfig:
    return tiny_config(market, out, seed=11)


def _worker(rank: int, market: str, out: str, port: int, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
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

    # Only rank 0 wrote: one metrics line per epoch, one run directory.
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
