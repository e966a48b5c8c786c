"""The demo's stages: each builds its `reid ...` command and calls the library entry point.

Every stage function returns the `StageOutcome` whose digest the next stages take as input,
so changing a setting reruns that stage and everything after it, and nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from reidcli.demo.command import Command
from reidcli.demo.context import DemoContext, StageOutcome
from reidcli.runtime.rundir import RunDir
from reidcli.utils.io import atomic_write_text
from reidcli.utils.toml_writer import dumps as toml_dumps

CFS_MODULES = ("reidcli.selection.pipeline", "reidcli.selection.proxies")


@contextmanager
def _synth_progress(ctx: DemoContext, what: str) -> Iterator[Callable[[int, int], None] | None]:
    if not ctx.progress:
        yield None
        return
    columns = (TextColumn(f"writing {what}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=ctx.console, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def synth_market(ctx: DemoContext, workers: int, second: bool = False) -> StageOutcome:
    """The labelled target, or (`second`) another world: a new seed draws other cameras,
    camera styles and clothing palettes, the domain gap that adaptation has to bridge."""
    from reidcli.data.synth import MarketConfig, write_market

    p = ctx.plan
    out = ctx.paths.second_world if second else ctx.paths.market
    cmd = (Command("synth", "market").arg(out).opt("--ids", "ids", p.ids)
           .opt("--cams", "cams", p.cams).opt("--per-cam", "per_cam", p.per_cam)
           .opt("--size", "size", p.size).opt("--seed", "seed", p.seed + int(second))
           .opt("--workers", None, workers).switch("--overwrite"))

    def action(_resume: bool) -> dict[str, Any]:
        with _synth_progress(ctx, "labelled images") as progress:
            s = write_market(out, MarketConfig(**cmd.values), overwrite=True, workers=workers,
                             progress=progress)
        return {"train_ids": s.train_ids, "train_images": s.train_images,
                "query_images": s.query_images, "gallery_images": s.gallery_images}

    if second:
        return ctx.run_stage("synth_second_world", "6. a second synthetic world (other cameras "
                             "and clothes): the unlabelled target of adaptation", cmd, {}, [out],
                             action)
    return ctx.run_stage("synth_market", "1. labelled synthetic target (Market layout)", cmd,
                         {}, [out], action)


def synth_unlabeled(ctx: DemoContext, workers: int) -> StageOutcome:
    from reidcli.data.synth import UnlabeledConfig, write_unlabeled

    p = ctx.plan
    out = ctx.paths.unlabeled
    cmd = (Command("synth", "unlabeled").arg(out).opt("--images", "images", p.unlabeled_images)
           .opt("--target-like", "target_like", p.target_like)
           .opt("--target-cams", "target_cams", p.cams).opt("--size", "size", p.size)
           .opt("--seed", "seed", p.seed).opt("--workers", None, workers).switch("--overwrite"))

    def action(_resume: bool) -> dict[str, Any]:
        with _synth_progress(ctx, "unlabelled images") as progress:
            s = write_unlabeled(out, UnlabeledConfig(**cmd.values), overwrite=True,
                                workers=workers, progress=progress)
        return {"images": s.images, "target_like": s.target_like}

    return ctx.run_stage("synth_unlabeled", "2. unlabelled source images (LUPerson style)", cmd,
                         {}, [out], action)


def _write_recipe(path: Path, settings: dict[str, Any], stage: str) -> str:
    text = toml_dumps(settings, header=f"Written by `reid demo`: {stage} settings that have "
                                       f"no command-line option.")
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return text


def write_recipe(ctx: DemoContext) -> str:
    """The pre-training settings without a command-line option, as a `--recipe` file.

    Returns the file's text, which is an input of every stage that reads it.
    """
    return _write_recipe(ctx.paths.recipe, ctx.plan.pretrain_recipe(), "pre-training")


def cfs_unavailable_reason() -> str | None:
    """Why `reid cfs-filter` cannot run in this installation, or None when it can."""
    for name in CFS_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as err:
            return f"{name} cannot be imported ({err})"
    return None


def cfs_filter(ctx: DemoContext, upstream: list[StageOutcome], recipe: str) -> StageOutcome:
    from reidcli.selection import CfsOptions
    from reidcli.selection import cfs_filter as run_cfs
    from reidcli.selection.proxies import ProxySettings

    p = ctx.plan
    cmd = (Command("cfs-filter").opt("--source", "source", f"luperson:{ctx.paths.unlabeled}")
           .opt("--target", "target", ctx.market_spec).opt("--keep", "keep", p.keep)
           .opt("-o", "output", ctx.paths.cfs_list).opt("--workdir", "workdir", ctx.paths.cfs_work)
           .opt("--proxy-epochs", "epochs", p.proxy_epochs)
           .opt("--proxy-sample", "sample", p.proxy_sample)
           .opt("--proxy-backbone", "backbone", p.backbone).opt("--proxy-size", "size", p.size)
           .opt("--proxy-batch-size", "batch_size", p.pretrain_batch)
           .opt("--proxy-recipe", "recipe", ctx.paths.recipe)
           .opt("--workers", "workers", ctx.workers).opt("--device", "device", ctx.device_option)
           .opt("--seed", "seed", p.seed)
           # The synthetic target has labels; with short proxy schedules a supervised target
           # proxy selects target-like images far better than a self-supervised one
           # (docs/benchmarks.md, "CFS filtering").
           .switch("--target-supervised", "target_supervised"))
    v = cmd.values

    def action(_resume: bool) -> dict[str, Any]:
        proxy = ProxySettings(target_supervised=v["target_supervised"],
            epochs=v["epochs"], sample=v["sample"], backbone=v["backbone"], size=v["size"],
            batch_size=v["batch_size"], recipe=v["recipe"], seed=v["seed"],
            workers=v["workers"], device=v.get("device", "auto"), progress=ctx.progress)
        result = run_cfs(CfsOptions(
            source=v["source"], target=v["target"], output=v["output"], keep=v["keep"],
            proxy=proxy, workdir=v["workdir"], workers=v["workers"], device=v.get("device", "auto"),
            progress=ctx.progress))
        if result is None:
            return {}
        ctx.console.print(f"kept {result.kept} of {result.total} source images "
                          f"(mean score {result.mean_kept:.4f} kept, {result.mean_all:.4f} all)",
                          highlight=False)
        return {"kept": result.kept, "total": result.total, "cutoff": result.cutoff}

    # An interrupted cfs-filter resumes by itself (finished proxies are reused, scoring
    # continues), so its work folder is kept when the same stage is run again.
    return ctx.run_stage(
        "cfs_filter", "3. cfs-filter: keep the source images closest to the target", cmd,
        {"after": [u.digest for u in upstream], "recipe": recipe},
        [ctx.paths.cfs_list], action, resume_command=cmd, scratch=[ctx.paths.cfs_work])


def pretrain(ctx: DemoContext, upstream: list[StageOutcome], recipe: str,
             subset: Path | None) -> StageOutcome:
    from reidcli.ssl import pretrain as run_pretrain
    from reidcli.ssl.config import resolve_config, resume_config

    p = ctx.plan
    run = ctx.paths.run("pretrain")
    cmd = (Command("pretrain").opt("--recipe", None, ctx.paths.recipe)
           .opt("--data", "data", f"luperson:{ctx.paths.unlabeled}")
           .opt("--subset", "subset", None if subset is None else str(subset))
           .opt("--backbone", "backbone", p.backbone).opt("--size", "global_size", p.size)
           .opt("--local-size", "local_size", p.local_size)
           .opt("--epochs", "epochs", p.pretrain_epochs)
           .opt("--warmup-epochs", "warmup_epochs", 1)
           .opt("--batch-size", "batch_size", p.pretrain_batch).opt("--seed", "seed", p.seed)
           .opt("--workers", "workers", ctx.workers).opt("--device", "device", ctx.device_option)
           .opt("-o", "output", str(run)))

    def summary(result: Any) -> dict[str, Any]:
        last = result.metrics[-1] if result.metrics else {}
        return {"run": str(run), "iterations": result.iterations, "loss": last.get("loss")}

    method = "DINO" + (", CFS subset" if subset is not None else ", all images")
    return _training_stage(
        ctx, "pretrain", f"4. self-supervised pre-training ({method})", cmd, cmd.values,
        upstream, (recipe, ctx.paths.recipe), (resolve_config, resume_config, run_pretrain),
        summary)


def _training_stage(ctx: DemoContext, name: str, title: str, cmd: Command,
                    values: dict[str, Any], upstream: list[StageOutcome], recipe: tuple[str, Path],
                    library: tuple[Callable[..., Any], Callable[..., Any], Callable[[Any], Any]],
                    summary: Callable[[Any], dict[str, Any]]) -> StageOutcome:
    """A `reid pretrain` / `reid finetune` stage (the subcommand of `cmd`): `library` is the
    stage's (resolve_config, resume_config, train), `recipe` the text and path of its recipe
    file. A fresh run trains from the recipe + `values`; an interrupted one continues from
    its checkpoint, as `reid STAGE -o RUN --resume` would."""
    resolve_config, resume_config, train = library
    recipe_text, recipe_path = recipe
    run = Path(values["output"])
    resume_cmd = (Command(cmd.argv[1]).opt("-o", "output", str(run)).switch("--resume", "resume")
                  .opt("--workers", "workers", ctx.workers)
                  .opt("--device", "device", ctx.device_option))

    def action(resume: bool) -> dict[str, Any]:
        if resume:
            cfg = resume_config(run, resume_cmd.values | {"progress": ctx.progress})
        else:
            cfg = resolve_config(recipe_path, values | {"progress": ctx.progress})
        return summary(train(cfg))

    inputs = {"after": [u.digest for u in upstream], "recipe": recipe_text}
    return ctx.run_stage(name, title, cmd, inputs, [run], action,
                         resume_command=resume_cmd if RunDir(run).has_checkpoint() else None)


def _finetune_command(ctx: DemoContext, data: str, pretrained: Path | None, lr: float,
                      epochs: int, warmup: int) -> Command:
    p = ctx.plan
    return (Command("finetune").opt("--recipe", None, ctx.paths.finetune_recipe)
            .opt("--data", "data", data)
            .opt("--backbone", "backbone", p.backbone).opt("--size", "size", p.size)
            .opt("--pretrained", "pretrained", None if pretrained is None else str(pretrained))
            .opt("--optimizer", "optimizer", "adamw").opt("--lr", "lr", lr)
            .opt("--epochs", "epochs", epochs).opt("--warmup-epochs", "warmup_epochs", warmup)
            .opt("--batch", None, p.batch).opt("--drop-path", "drop_path", 0.0))


def finetune(ctx: DemoContext, name: str, title: str, upstream: list[StageOutcome],
             pretrained: Path | None) -> StageOutcome:
    p = ctx.plan
    cmd = _finetune_command(ctx, ctx.market_spec, pretrained, p.finetune_lr, p.finetune_epochs,
                            p.finetune_warmup)
    return _train(ctx, name, title, upstream, cmd)


def adapt(ctx: DemoContext, name: str, title: str, upstream: list[StageOutcome],
          pretrained: Path) -> StageOutcome:
    """`reid finetune --unsupervised` on the second world's train split (labels unread)."""
    p = ctx.plan
    cmd = (_finetune_command(ctx, ctx.second_world_spec, pretrained, p.adapt_lr, p.adapt_epochs, 0)
           .switch("--unsupervised", "unsupervised").opt("--eps", "eps", p.adapt_eps)
           .opt("--min-samples", "min_samples", p.adapt_min_samples).opt("--k1", "k1", p.adapt_k1)
           .opt("--iters", "iters", p.adapt_iters))
    if p.adapt_camera_norm:
        cmd.switch("--camera-norm", "camera_norm")
    return _train(ctx, name, title, upstream, cmd)


def _train(ctx: DemoContext, name: str, title: str, upstream: list[StageOutcome],
           cmd: Command) -> StageOutcome:
    from reidcli.training import finetune as run_finetune
    from reidcli.training import resolve_config, resume_config

    p = ctx.plan
    run = ctx.paths.run(name)
    recipe = _write_recipe(ctx.paths.finetune_recipe, p.finetune_recipe(), "fine-tuning")
    cmd.opt("--seed", "seed", p.seed).opt("--workers", "workers", ctx.workers)
    cmd.opt("--device", "device", ctx.device_option).opt("-o", "output", str(run))
    values = cmd.values | {"ids_per_batch": p.batch[0], "images_per_id": p.batch[1]}
    return _training_stage(
        ctx, f"finetune_{name}", title, cmd, values, upstream,
        (recipe, ctx.paths.finetune_recipe), (resolve_config, resume_config, run_finetune),
        lambda result: {"run": str(run), "final": dict(result.final or {})})


def extract(ctx: DemoContext, name: str, upstream: StageOutcome, run: str | None = None,
            data: str | None = None) -> StageOutcome:
    """Bank `name` of run `run` (default: the run called `name`) on `data` (the target)."""
    from reidcli.inference.extract import ExtractOptions, extract_bank

    bank = ctx.paths.bank(name)
    cmd = (Command("extract").opt("-c", "checkpoint", ctx.paths.run(run or name))
           .opt("-o", "output", bank).opt("--data", "data", data or ctx.market_spec)
           .opt("--workers", "workers", ctx.workers).opt("--device", "device", ctx.device_option))

    def action(_resume: bool) -> dict[str, Any]:
        # The bank resumes from its own partial file when the same extraction was cut short.
        result = extract_bank(ExtractOptions(**cmd.values, progress=ctx.progress))
        return {"bank": str(result.path), "rows": result.rows}

    return ctx.run_stage(f"extract_{name}", f"extract features: {name} model", cmd,
                         {"after": [upstream.digest]}, [bank], action)


def evaluate(ctx: DemoContext, name: str, upstream: StageOutcome, rerank: bool) -> StageOutcome:
    from reidcli.retrieval import RerankParams, Retrieval, evaluate_path
    from reidcli.retrieval.report import write_json

    bank = ctx.paths.bank(name)
    label = f"{name}-rerank" if rerank else name
    out = ctx.paths.result(label)
    cmd = Command("evaluate").arg(bank)
    if rerank:
        cmd.switch("--rerank")
    cmd.opt("--device", None, ctx.device_option).opt("--json", None, out)

    def action(_resume: bool) -> dict[str, Any]:
        result = evaluate_path(bank, Retrieval(rerank=RerankParams() if rerank else None),
                               device=ctx.device)
        write_json(result, out)
        return {"mAP": result.mAP, "rank1": result.rank1, "mINP": result.mINP,
                "queries": result.num_valid_queries}

    title = f"evaluate: {name} model" + (", k-reciprocal re-ranking" if rerank else "")
    return ctx.run_stage(f"evaluate_{label}", title, cmd, {"after": [upstream.digest]}, [out],
                         action)


def visualize(ctx: DemoContext, name: str, upstream: StageOutcome) -> StageOutcome:
    from reidcli.visualize import RankOptions, render_ranklist

    p = ctx.plan
    bank = ctx.paths.bank(name)
    out = ctx.paths.picture
    cmd = (Command("visualize").arg(bank).opt("--queries", None, p.show_queries)
           .opt("-k", None, p.show_k).opt("-o", None, out))

    def action(_resume: bool) -> dict[str, Any]:
        result = render_ranklist(RankOptions(source=bank, output=out, queries=p.show_queries,
                                             k=p.show_k))
        return {"picture": str(result.path), "size": list(result.size),
                "missing": result.missing}

    return ctx.run_stage("visualize", f"ranked lists of the {name} model", cmd,
                         {"after": [upstream.digest]}, [out], action)
