"""The two CFS proxies: given as run directories, or trained here with short schedules.

theta_s (source proxy): a short self-supervised `pretrain` on a random sample of the
source, so that it models the source distribution at a fraction of the full cost.
theta_t (target proxy): theta_s adapted to the target's training images. As in the CFS
paper (TransReID-SSL), it is theta_s fine-tuned on the target's identity labels (`finetune`,
pretrained = theta_s) whenever the target has them; a target without labels gets the same
self-supervised method as theta_s instead. `target_supervised` forces either. The
supervised proxy is the robust one: a self-supervised proxy on a short schedule changes
most on the target images themselves and can rank the source the wrong way round
(docs/benchmarks.md, "CFS filtering"). Either way theta_t keeps theta_s's backbone, input
size and normalisation, so both see the same tensor during scoring and their features are
comparable.

Runs live in the work folder (`source_proxy/`, `target_proxy/`). A finished run is marked
with the settings it was trained with and reused as it is (not even re-exported: saving the
same weights again gives a different file, hence a different checksum, which would
invalidate the scores); an interrupted one continues through the training stage's own
`--resume`; a run of other settings is an error rather than silently replaced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidcli.errors import ReidError, TrainingError
from reidcli.runtime import distributed as ddp
from reidcli.runtime.rundir import RunDir
from reidcli.selection.score import SourceImages
from reidcli.utils.checks import at_least
from reidcli.utils.io import atomic_write_text

log = logging.getLogger(__name__)

SOURCE_PROXY = "source_proxy"
TARGET_PROXY = "target_proxy"
SAMPLE_LIST = "source_sample.txt"
DONE_MARKER = "cfs_proxy.json"


@dataclass
class ProxySettings:
    """How proxies are trained when no run directory is given."""

    epochs: int = 10
    method: str = "dino"
    sample: int = 100_000
    """Source images the source proxy is pre-trained on (a seeded random sample)."""
    backbone: str = "vit-s"
    size: tuple[int, int] = (256, 128)
    """Global crop / model input size; local crops are half of it."""
    batch_size: int = 64
    init: str | None = None
    """Starting weights of the source proxy (e.g. ImageNet), as `pretrain --init`."""
    target_supervised: bool | None = None
    """Fine-tune the target proxy on the target's identity labels (True), train it
    self-supervised (False), or None: supervised when the target has labels."""
    recipe: Path | None = None
    """A `reid pretrain` recipe for everything the options above do not set."""
    seed: int = 0
    workers: int = 4
    device: str = "auto"
    amp: str = "auto"
    progress: bool = True
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra PretrainConfig fields (library users, tests: smaller heads, fewer crops)."""
    finetune_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra FinetuneConfig fields for `target_supervised` (batch P x K, lr, ...)."""

    def supervised_target(self, target: str, data_root: str | None) -> bool:
        """Whether the target proxy is (to be) fine-tuned with identity labels."""
        if self.target_supervised is False:
            return False
        labelled = has_labels(target, data_root)
        if self.target_supervised and not labelled:
            raise ReidError(f"--target-supervised: the train split of {target} has no "
                            f"identity labels (fewer than {MIN_IDENTITIES} identities); drop "
                            f"the option to train the target proxy self-supervised")
        return labelled

    def validate(self) -> None:
        at_least(1, ("--proxy-epochs", self.epochs), ("--proxy-sample", self.sample),
                 ("--proxy-batch-size", self.batch_size))

    def run_values(self, output: Path) -> dict[str, Any]:
        """The settings both training stages take as they are, for a proxy run in `output`."""
        return {"seed": self.seed, "workers": self.workers, "device": self.device,
                "amp": self.amp, "progress": self.progress, "output": str(output),
                "resume": RunDir(output).has_checkpoint()}


REFERENCE_SIZE = (256, 128)
REFERENCE_PADDING = 10
"""TransReID's fine-tuning input size and crop padding (the `reid finetune` defaults)."""
KEPT_FROM_SOURCE = ("backbone", "img_size", "stride", "stem", "part_tokens", "mean", "std")
"""The ModelConfig fields theta_t takes from theta_s (its input and token layout); the rest
(drop path, SIE, ...) are the fine-tuning defaults, as `finetune --pretrained` gives."""
MIN_IDENTITIES = 2
"""Identities a target needs for the supervised target proxy (ID + triplet loss)."""


def has_labels(target: str, data_root: str | None) -> bool:
    """Whether the target's train split has identity labels to fine-tune on."""
    from reidcli.data import load_dataset

    dataset = load_dataset(target, data_root)
    return "train" in dataset.splits and dataset.num_train_pids >= MIN_IDENTITIES


def write_sample(images: SourceImages, n: int, seed: int, path: Path) -> int:
    """A seeded random sample of `n` source images (in source order) as a list file."""
    total = len(images)
    if n >= total:
        chosen = np.arange(total)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    header = f"# reid cfs-filter: random sample of {len(chosen)} of {total} source images " \
             f"(seed {seed}) for the source proxy\n"
    atomic_write_text(path, header + "".join(images.relative[i] + "\n" for i in chosen.tolist()))
    return len(chosen)


def _fingerprint(cfg: Any) -> dict[str, Any]:
    """The settings that shape the trained weights (runtime fields such as workers excluded),
    as JSON values."""
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if not f.metadata.get("runtime")}
    return json.loads(json.dumps(values, default=str))


def _kind(fingerprint: dict[str, Any]) -> str:
    # Only fine-tuning configs have a P x K identity batch.
    return "supervised" if "ids_per_batch" in fingerprint else "self-supervised"


def _finished(run: Path, cfg: Any) -> bool:
    marker = run / DONE_MARKER
    if not marker.is_file():
        return False
    saved = json.loads(marker.read_text(encoding="utf-8"))
    wanted = _fingerprint(cfg)
    if _kind(saved) != _kind(wanted):
        raise ReidError(
            f"the proxy in {run} was trained {_kind(saved)}, this run trains it "
            f"{_kind(wanted)} (targets with identity labels get a supervised one unless "
            f"--target-self-supervised): remove it, choose another --workdir, or pass "
            f"--target-{_kind(saved)}")
    diffs = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in wanted.items() if saved.get(k) != v]
    if diffs:
        raise ReidError(f"the proxy in {run} was trained with other settings ("
                        + "; ".join(diffs) + "): remove it or choose another --workdir")
    log.info("reusing the finished proxy in %s", run)
    return True


def _mark_finished(run: Path, cfg: Any, ctx: ddp.DistContext) -> None:
    if ctx.is_main:
        atomic_write_text(run / DONE_MARKER, json.dumps(_fingerprint(cfg), indent=1) + "\n")
    ddp.barrier(ctx)


def _train_once(output: Path, cfg: Any, train: Callable[[Any], object],
                ctx: ddp.DistContext) -> Path:
    """Train the proxy run `cfg` into `output`, unless it is finished there (same settings)."""
    if _finished(output, cfg):
        return output
    if cfg.resume:
        log.info("continuing the proxy run in %s", output)
    try:
        train(cfg)
    except TrainingError as err:
        raise TrainingError(f"{err}\n(the proxy in {output} was trained with other settings: "
                            f"remove it or choose another --workdir)") from err
    _mark_finished(output, cfg, ctx)
    return output


def _pretrain(settings: ProxySettings, data: str, data_root: str | None, output: Path,
              batch: int, subset: Path | None, init: str | None, ctx: ddp.DistContext) -> Path:
    from reidcli.ssl import pretrain
    from reidcli.ssl.config import resolve_config

    h, w = settings.size
    overrides: dict[str, Any] = {
        "data": data, "data_root": data_root, "subset": None if subset is None else str(subset),
        "init": init, "method": settings.method, "backbone": settings.backbone,
        "global_size": (h, w), "local_size": (max(h // 2, 16), max(w // 2, 16)),
        "epochs": settings.epochs, "warmup_epochs": settings.epochs // 10,
        "batch_size": batch, **settings.run_values(output),
    }
    overrides |= settings.pretrain_overrides
    cfg = resolve_config(settings.recipe, {k: v for k, v in overrides.items() if v is not None})
    return _train_once(output, cfg, pretrain, ctx)


def crop_padding(size: Sequence[int]) -> int:
    """TransReID's random-crop padding (10 px at 256x128) scaled to the input width.

    At 64x32, 10 px is almost a third of the width: the crops then show mostly border, and
    the target proxy learns so little that its ranking is barely better than chance (the
    kept half of a synthetic source was 0.33 target-like against 0.30 for a random half,
    0.48 with 2 px; docs/benchmarks.md, "CFS filtering").
    """
    return max(1, round(REFERENCE_PADDING * size[1] / REFERENCE_SIZE[1]))


def _finetune(settings: ProxySettings, target: str, data_root: str | None, output: Path,
              source_run: Path, ctx: ddp.DistContext) -> Path:
    from reidcli.models import read_config, stage_values
    from reidcli.training import FinetuneConfig, finetune

    src = read_config(source_run)
    values: dict[str, Any] = {
        "data": target, "data_root": data_root,
        "pretrained": str(source_run), "padding": crop_padding(src.img_size),
        **stage_values(FinetuneConfig, src, KEPT_FROM_SOURCE),
        "epochs": settings.epochs, "warmup_epochs": min(5, settings.epochs // 5),
        **settings.run_values(output),
    }
    values |= settings.finetune_overrides
    return _train_once(output, FinetuneConfig(**values), finetune, ctx)


def train_source_proxy(images: SourceImages, settings: ProxySettings, workdir: Path,
                       data_root: str | None, ctx: ddp.DistContext) -> Path:
    sample = workdir / SAMPLE_LIST
    if ctx.is_main:
        n = write_sample(images, settings.sample, settings.seed, sample)
        log.info("source proxy: %s pre-training on %d of %d source images",
                 settings.method, n, len(images))
    ddp.barrier(ctx)
    n = min(settings.sample, len(images))
    # The source as a plain image list under its root: works for any source dataset.
    return _pretrain(settings, f"luperson:{images.root}", data_root, workdir / SOURCE_PROXY,
                     min(settings.batch_size, n), sample, settings.init, ctx)


def train_target_proxy(target: str, source_run: Path, settings: ProxySettings, workdir: Path,
                       data_root: str | None, ctx: ddp.DistContext) -> Path:
    output = workdir / TARGET_PROXY
    if settings.supervised_target(target, data_root):
        log.info("target proxy: fine-tuning %s on %s with identity labels", source_run, target)
        return _finetune(settings, target, data_root, output, source_run, ctx)
    from reidcli.data import load_dataset

    n = len(load_dataset(target, data_root).train)
    why = "as asked" if settings.target_supervised is False else "the target has no labels"
    log.info("target proxy: %s (self-supervised, %s) on the %d %s training images, from %s",
             settings.method, why, n, target, source_run)
    return _pretrain(settings, target, data_root, output, min(settings.batch_size, n), None,
                     str(source_run), ctx)


def obtain_proxies(
    images: SourceImages, target: str | None, source_model: Path | None,
    target_model: Path | None, workdir: Path, settings: ProxySettings, data_root: str | None,
    ctx: ddp.DistContext,
) -> tuple[Path, Path]:
    """(theta_s run dir, theta_t run dir): given ones as they are, missing ones trained."""
    if target_model is not None and source_model is None:
        raise ReidError("--target-model needs --source-model: theta_t is theta_s fine-tuned "
                        "on the target, so a target proxy alone cannot be compared")
    if target_model is None and target is None:
        raise ReidError("give --target DATASET to train the target proxy, or --target-model")
    if source_model is None or target_model is None:
        settings.validate()
        workdir.mkdir(parents=True, exist_ok=True)
    if source_model is None:
        source_model = train_source_proxy(images, settings, workdir, data_root, ctx)
    if target_model is None:
        assert target is not None
        target_model = train_target_proxy(target, Path(source_model), settings, workdir,
                                          data_root, ctx)
    return Path(source_model), Path(target_model)

