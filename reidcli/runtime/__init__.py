"""What every stage runs on, below the stages themselves.

- `device`: `--device` and `--amp` resolution and the autocast context;
- `distributed`: the process group under `torchrun` and its small collectives;
- `rundir`: the run-directory layout (file names) and its atomic writes;
- `files`: content hashes and contiguous shards of work;
- `training`: what every training loop does the same way (DDP wrapping, the gradient scaler
  and step, the non-finite-loss abort, per-epoch running metrics).

Nothing here imports a stage package (`training`, `ssl`, `inference`, `selection`, ...), so
each of them can use it without cycles.
"""
