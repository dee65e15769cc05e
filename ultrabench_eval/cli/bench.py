"""`ubench bench`, `fewshot`, `sweep`, `robust` and `extract`: the flags become a BenchConfig,
RobustConfig or ExtractConfig (whose defaults the flags show), checked before any work."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultrabench_eval.cli.arguments import (
    Subparsers,
    cache_flag,
    csv_list,
    csv_tuple,
    data_flag,
    fractions,
    given,
    profile_flag,
    profile_path,
    shots,
)
from ultrabench_eval.cli.hub import hub_flags, resolve_data
from ultrabench_eval.cli.output import info
from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import DEFAULT_BATCH_SIZE, DEFAULT_DEVICE, DEFAULT_WORKERS
from ultrabench_eval.protocols.config import (
    DEFAULT_PROBE,
    DEFAULT_REFERENCE,
    DEFAULT_SEEDS,
    WEIGHT_FREE_MODELS,
    BenchConfig,
    validate,
)

if TYPE_CHECKING:
    from ultrabench_eval.features.extract_run import ExtractConfig
    from ultrabench_eval.protocols.sweep import ClusterOptions
    from ultrabench_eval.results.record import ResultRecord

DEVICE_HELP = "auto, cpu, cuda or cuda:N"
WORKERS_HELP = "decoding processes (0: automatic)"


def _add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `bench`, shared by `fewshot`, `sweep` and `robust`."""
    p.add_argument(
        "--model",
        type=csv_list,
        help="model name(s), comma-separated "
        "(default: the weight-free models pixels,hog,random-vit-s)",
    )
    p.add_argument(
        "--tasks",
        type=csv_list,
        help="task name(s), comma-separated "
        "(default: the generated suite, written into the data root when missing)",
    )
    data_flag(p)
    hub_flags(p)
    p.add_argument(
        "--cache",
        help=f"image and feature cache root (default: ${config.CACHE_ENV} "
        "or ~/.cache/ultrabench-eval)",
    )
    p.add_argument(
        "--results",
        help=f"where records and tables go (default: ${config.RESULTS_ENV} or ./results/runs)",
    )
    p.add_argument("--weights", help="local weights file for the (single) model")
    p.add_argument("--pooling", help="feature pooling (default: the model's own)")
    p.add_argument("--probe", default=DEFAULT_PROBE, help="probe preset (see `ubench probes`)")
    p.add_argument(
        "--probe-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a probe setting, e.g. standardize=true, max_epochs=100, ks=[1,5] (repeatable)",
    )
    p.add_argument(
        "--probe-backend",
        choices=["torch", "sklearn"],
        help="linear probe solver (default torch; sklearn is the reference)",
    )
    p.add_argument("--class-weight", choices=["balanced"], help="weight classes in the probe loss")
    p.add_argument(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        help=f"seeds per protocol (default {DEFAULT_SEEDS})",
    )
    p.add_argument(
        "--fractions",
        type=fractions,
        help="training-label fractions, e.g. 1,0.1 or, in percent, 100,50,10,5,1 "
        "(default: the few-shot sweep 100,50,10,5,1 %%)",
    )
    p.add_argument("--shots", type=shots, help="K training labels per class, e.g. 1,5,10")
    p.add_argument(
        "--image-size",
        type=int,
        help="image store side in pixels (default: each model's input size, resized once)",
    )
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help=WORKERS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="refit and rewrite records even when their inputs are unchanged",
    )
    allow_overlap_flag(p)


def allow_overlap_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-overlap",
        action="store_true",
        help="run although an image or a group (patient) lies in two splits; recorded",
    )


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """A BenchConfig from the flags `bench`, `fewshot`, `sweep` and `robust` share."""
    from ultrabench_eval.data import synth

    tasks, data_root = resolve_data(args, args.tasks)
    return BenchConfig(
        # `--tasks ''` is an empty list, refused by `validate`; only a flag left out defaults
        models=list(WEIGHT_FREE_MODELS) if args.model is None else args.model,
        tasks=synth.default_synth_tasks() if tasks is None else tasks,
        data_root=data_root,
        cache_root=config.cache_root(args.cache),
        results_root=config.results_root(args.results),
        weights=args.weights,
        pooling=args.pooling,
        probe=args.probe,
        probe_options=probe_options(args),
        seeds=args.seeds,
        fractions=args.fractions,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        allow_overlap=args.allow_overlap,
        **given(args, shots="shots"),
    )


def probe_options(args: argparse.Namespace) -> dict[str, Any]:
    """`--probe-option KEY=VALUE` (VALUE read as YAML), `--probe-backend`, `--class-weight`;
    the probe checks them (`protocols.config.validate`)."""
    import yaml

    options: dict[str, Any] = {}
    for item in args.probe_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--probe-option '{item}' must be KEY=VALUE (e.g. standardize=true)")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(
                f"--probe-option '{item}': '{value}' is not a YAML value (quote text)"
            ) from None
    if args.probe_backend:
        options["backend"] = args.probe_backend
    if args.class_weight:
        options["class_weight"] = args.class_weight
    return options


def _checked_bench_config(args: argparse.Namespace) -> BenchConfig:
    """The BenchConfig, checked before the generated suite is written or anything runs."""
    from ultrabench_eval.data import synth

    cfg = bench_config(args)
    validate(cfg)
    synth.generate_missing_synth(cfg.tasks, cfg.data_root, log=info)
    return cfg


# -- bench, fewshot ---------------------------------------------------------------------------


def add_bench(sub: Subparsers) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark models on tasks and print the leaderboard (then, on stderr, one "
        "timing line per stage)",
    )
    _add_bench_arguments(p)
    profile_flag(p)
    p.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ultrabench_eval.protocols import bench

    with profiled(args.profile):
        cfg = _checked_bench_config(args)
        _print_leaderboard(bench.run(cfg, log=info), cfg.results_root)
    return 0


def add_fewshot(sub: Subparsers) -> None:
    p = sub.add_parser(
        "fewshot", help="the bench over label budgets, one table row per fraction (or shots)"
    )
    _add_bench_arguments(p)
    profile_flag(p)
    p.set_defaults(handler=run_fewshot)


def run_fewshot(args: argparse.Namespace) -> int:
    from ultrabench_eval.protocols import bench
    from ultrabench_eval.report.fewshot_table import render_fewshot

    with profiled(args.profile):
        cfg = _checked_bench_config(args)
        records = bench.run(cfg, log=info)
        print(render_fewshot(records), end="")
    return 0


@contextlib.contextmanager
def profiled(given_path: str | None) -> Iterator[None]:
    """Run the block under cProfile and write its statistics to `--profile PATH` (pstats
    format, atomically) when it ends or is interrupted; a bad PATH is a UserError before the
    block runs. Nothing when no path is given."""
    path = profile_path(given_path)
    if path is None:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    except KeyboardInterrupt:
        _write_profile(profiler, path)
        raise
    else:
        _write_profile(profiler, path)
    finally:
        profiler.disable()


def _write_profile(profiler: Any, path: Path) -> None:
    from ultrabench_eval.core import atomic

    profiler.disable()
    atomic.write_with(path, profiler.dump_stats)
    info(f"profile in {path}: read it with `python -m pstats {path}` or `snakeviz {path}`")


def _print_leaderboard(records: list[ResultRecord], results_root: Path) -> None:
    from ultrabench_eval.core import atomic
    from ultrabench_eval.report import leaderboard

    table = leaderboard.render_markdown(records)
    atomic.write_text(results_root / "leaderboard.md", table)
    print(table, end="")


# -- sweep ------------------------------------------------------------------------------------


def add_sweep(sub: Subparsers) -> None:
    p = sub.add_parser(
        "sweep", help="the bench with one cluster job per model (submitit: Slurm or local)"
    )
    _add_bench_arguments(p)
    p.add_argument("--executor", choices=["slurm", "local"])
    p.add_argument("--log-dir", default="results/sweeps", help="submitit logs and job files")
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument("--account", help="Slurm account")
    p.add_argument("--gpus-per-node", type=int)
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem-gb", type=int)
    p.add_argument("--timeout-min", type=int)
    p.add_argument("--no-wait", action="store_true", help="submit and return")
    p.set_defaults(handler=run_sweep)


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """The Slurm request: the flags given, `sweep.ClusterOptions`' defaults for the others."""
    from ultrabench_eval.protocols import sweep

    return sweep.ClusterOptions(
        **given(
            args,
            partition="partition",
            gpus_per_node="gpus_per_node",
            cpus_per_task="cpus_per_task",
            mem_gb="mem_gb",
            timeout_min="timeout_min",
            account="account",
        )
    )


def run_sweep(args: argparse.Namespace) -> int:
    from ultrabench_eval.protocols import bench, sweep

    cfg = _checked_bench_config(args)
    bench.check(cfg)  # every user error shows here, before anything is submitted
    cluster = cluster_options(args)
    jobs = sweep.submit(
        cfg, Path(args.log_dir), cluster=cluster, **given(args, executor="executor")
    )
    for model, job in zip(cfg.models, jobs, strict=True):
        info(f"submitted {model}: job {job.job_id} (logs in {args.log_dir})")
    if args.no_wait:
        return 0
    failed = []
    for model, job in zip(cfg.models, jobs, strict=True):
        try:
            job.result()
        except Exception as exc:  # the job's own traceback is in its log
            failed.append(model)
            info(f"job for {model} failed: {str(exc).strip().splitlines()[-1]}")
    from ultrabench_eval.results import record as results

    wanted = set(cfg.models)
    records = [
        r
        for r in results.read_records(cfg.results_root)
        if r.model_name in wanted and r.task_name in set(cfg.tasks)
    ]
    _print_leaderboard(records, cfg.results_root)
    return 1 if failed else 0


# -- robust -----------------------------------------------------------------------------------


def add_robust(sub: Subparsers) -> None:
    p = sub.add_parser(
        "robust", help="robustness: probe fitted on clean features, scored on corrupted test images"
    )
    _add_bench_arguments(p)
    p.add_argument(
        "--corruptions",
        type=csv_list,
        help="corruptions (see `ubench corruptions`), composed with +: speckle,speckle+shadow",
    )
    p.add_argument("--preset", help="a corruption suite: us-jepa-2026 or ultrasound-5")
    p.add_argument(
        "--severities", help="e.g. 1-5 or 1,3 (default: the preset's, or every severity)"
    )
    p.add_argument(
        "--reference",
        default=DEFAULT_REFERENCE,
        help="reference model of the corruption error (mCE), or none "
        f"(default: {DEFAULT_REFERENCE})",
    )
    p.add_argument("--corruption-seed", type=int, help="the corruptions' seed")
    profile_flag(p)
    p.set_defaults(handler=run_robust)


def run_robust(args: argparse.Namespace) -> int:
    """`ubench robust`: run the protocol, print a table per task, save it beside the records."""
    with profiled(args.profile):
        return _robust(args)


def _robust(args: argparse.Namespace) -> int:
    from ultrabench_eval.corruptions.presets import parse_severities, suite
    from ultrabench_eval.data import synth
    from ultrabench_eval.protocols import robust
    from ultrabench_eval.report.robustness import render
    from ultrabench_eval.results.robustness import summarise

    if args.fractions or args.shots:
        raise UserError(
            "robust fits its probe on every clean training label: drop --fractions and --shots"
        )
    cfg = bench_config(args)
    severities = parse_severities(args.severities) if args.severities else None
    pairs = suite(args.corruptions, args.preset, severities)
    reference = None if args.reference.lower() in ("", "none") else args.reference
    run = robust.RobustConfig(cfg, pairs, reference, **given(args, seed="corruption_seed"))
    validate(run)
    synth.generate_missing_synth(cfg.tasks, cfg.data_root, log=info)
    records = robust.run(run, log=info)
    title = args.preset or ", ".join(args.corruptions)
    text = render(summarise(records, reference), reference, title)
    path = robust.write_summary(cfg.results_root, text)
    print(text, end="")
    info(f"records in {cfg.results_root}, this table in {path}")
    return 0


# -- extract ----------------------------------------------------------------------------------


def add_extract(sub: Subparsers) -> None:
    p = sub.add_parser(
        "extract",
        help="compute features into the cache (runs under torchrun to use several processes)",
    )
    p.add_argument("--model", type=csv_list, required=True, help="model name(s), comma-separated")
    p.add_argument(
        "--tasks",
        type=csv_list,
        help="task name(s), comma-separated (required unless --data names a Hugging Face "
        "dataset, whose own task is then extracted)",
    )
    data_flag(p)
    hub_flags(p)
    cache_flag(p)
    p.add_argument("--weights", help="local weights file for the (single) model")
    p.add_argument("--splits", type=csv_tuple)
    p.add_argument(
        "--views",
        type=csv_list,
        help="clean and/or <corruption>:<severity> (see `ubench corruptions`)",
    )
    p.add_argument("--image-size", type=int, help="image store side (default: the model's)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help=WORKERS_HELP)
    p.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    allow_overlap_flag(p)
    p.set_defaults(handler=run_extract)


def extract_config(args: argparse.Namespace) -> ExtractConfig:
    """An ExtractConfig from the flags of `extract`."""
    from ultrabench_eval.features.extract_run import ExtractConfig

    tasks, data_root = resolve_data(args, args.tasks)
    if tasks is None:
        raise UserError("extract needs --tasks NAME[,NAME2] (or --data naming a dataset)")
    return ExtractConfig(
        models=args.model,
        tasks=tasks,
        data_root=data_root,
        cache_root=config.cache_root(args.cache),
        weights=args.weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        compile=args.compile,
        channels_last=args.channels_last,
        progress=not args.no_progress,
        allow_overlap=args.allow_overlap,
        **given(args, splits="splits", views="views"),
    )


def run_extract(args: argparse.Namespace) -> int:
    from ultrabench_eval.features.extract_run import run_extraction

    cfg = extract_config(args)
    validate(cfg)
    run_extraction(cfg, log=info)
    return 0
