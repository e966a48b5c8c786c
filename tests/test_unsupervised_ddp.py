"""`--unsupervised` under DDP: 2 CPU processes with gloo.

Each rank extracts its shard of the train split, rank 0 clusters the gathered features and
broadcasts the labels; every rank then updates its memory with the whole global batch, so
memories and parameters stay identical across ranks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from _training_data import write_market
from test_training_ddp import WORLD, _free_port
from test_unsupervised_training import usl_config

from reidcli.training import Hooks, finetune


def _worker(rank: int, market: str, out: str, port: int, dump: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from reidcli.training import cluster_contrast as trainer_mod

    steps: list[dict] = []
    records: list[dict] = []
    original = trainer_mod.ClusterContrastTrainer._after_step

    def after_step(self) -> None:
        original(self)
        steps.append({"memory": self.memory.centroids.sum(dim=1).tolist(),
                      "local": len(self._step_batch[1])})

    trainer_mod.ClusterContrastTrainer._after_step = after_step

    def on_epoch_end(info) -> None:
        records.append({k: info.record[k] for k in ("clusters", "outliers", "purity_ari")})
        if info.epoch == 2:
            state = {k: v.detach().clone() for k, v in info.model.state_dict().items()}
            torch.save(state, Path(dump, f"rank{rank}.pt"))

    finetune(usl_config(Path(market), Path(out), eval_every=0), Hooks(on_epoch_end=on_epoch_end))
    Path(dump, f"rank{rank}.json").write_text(json.dumps({"steps": steps, "records": records}))


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    market = write_market(tmp_path / "market", train_ids=8, test_ids=2, cams=2, per_cam=3)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    mp.spawn(_worker, args=(str(market), str(out), _free_port(), str(dump)),
             nprocs=WORLD, join=True)
    ranks = [json.loads((dump / f"rank{r}.json").read_text()) for r in range(WORLD)]
    # Rank 0's clustering reached both ranks, and with one process it is the same: the
    # gathered shards are the single-process features, in order.
    assert ranks[0]["records"] == ranks[1]["records"]
    single = finetune(usl_config(market, tmp_path / "single", epochs=1, eval_every=0))
    first = single.metrics[0]
    assert ranks[0]["records"][0] == {k: first[k] for k in ("clusters", "outliers", "purity_ari")}
    # Each rank trains on half of every batch but updates the memory with all of it.
    assert len(ranks[0]["steps"]) == 2 * 3
    assert all(step["local"] == 4 for step in ranks[0]["steps"])
    assert [s["memory"] for s in ranks[0]["steps"]] == [s["memory"] for s in ranks[1]["steps"]]
    states = [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    params = [k for k in states[0] if not k.endswith(("running_mean", "running_var",
                                                       "num_batches_tracked"))]
    for name in params:
        assert torch.equal(states[0][name], states[1][name]), name
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
