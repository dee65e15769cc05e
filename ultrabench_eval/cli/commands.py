"""What each `ubench` command does; `ultrabench_eval.cli.parser` parses the arguments."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from ultrabench_eval.core import config
from ultrabench_eval.core.errors import UserError


def cmd_synth(args: argparse.Namespace) -> int:
    from ultrabench_eval.data.synth import write_suite

    out = config.data_root(args.out)
    paths = write_suite(
        out,
        seed=args.seed,
        num_images=args.num_images,
        image_size=args.image_size,
        tasks=args.tasks,
        workers=args.workers,
    )
    for path in paths:
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import MODELS
    from ultrabench_eval.models.factory import make_adapter

    if args.check:
        return _check_models([make_adapter(n) for n in (args.models or MODELS.names())], args)
    rows = []
    for name in MODELS.names():
        adapter = make_adapter(name)
        info = asdict(adapter.info)
        rows.append(
            {"name": name, **info, "input": _spec_text(adapter), "poolings": list(adapter.poolings)}
        )
    for prefix in MODELS.prefixes():
        rows.append(
            {
                "name": f"{prefix}<model_name>",
                "family": prefix.rstrip(":"),
                "architecture": "any timm model, with its pretrained config",
                "params": None,
                "pretraining_data": "per model",
                "weights_source": "hf-hub via timm, or --weights FILE",
                "license": "per model",
                "citation": "",
                "input": "per model",
                "poolings": ["cls", "mean", "avg"],
            }
        )
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    columns = [
        "name",
        "family",
        "architecture",
        "params",
        "pretraining_data",
        "weights_source",
        "license",
        "input",
        "poolings",
    ]
    _print_table(rows, columns)
    return 0


def _check_models(adapters: list[Any], args: argparse.Namespace) -> int:
    from ultrabench_eval.models.model_check import check_models

    rows = []
    for row in check_models(adapters, depth=args.reduced):
        status = "pass" if row.ok else "FAIL"
        _info(f"{status} {row.model} {row.layout} ({row.seconds:.1f} s): {row.message}")
        rows.append(
            {
                "model": row.model,
                "layout": row.layout,
                "file": row.file_name,
                "result": status,
                "seconds": f"{row.seconds:.1f}",
                "detail": row.message,
            }
        )
    _print_table(rows, ["model", "layout", "file", "result", "seconds", "detail"])
    failed = sum(r["result"] == "FAIL" for r in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _spec_text(adapter: Any) -> str:
    spec = adapter.input_spec
    return f"{spec.size[0]}x{spec.size[1]}x{spec.channels} {spec.interpolation}"


def cmd_tasks(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import TASKS

    if getattr(args, "tasks_command", None) == "check":
        from ultrabench_eval.data.task_check import run_check

        return run_check(args)
    rows = []
    for _, card in TASKS.items():
        data = {k: v for k, v in asdict(card).items() if k != "path"}
        data["classes"] = list(card.classes)
        rows.append(data)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        sizes = row["split_sizes"]
        row["splits (train/val/test)"] = (
            "/".join(str(sizes.get(s, "?")) for s in ("train", "validation", "test"))
            if sizes
            else ""
        )
        row["classes"] = f"{len(row['classes'])}: {', '.join(row['classes'])}"
    _print_table(
        rows,
        [
            "name",
            "dataset",
            "classes",
            "splits (train/val/test)",
            "organ",
            "preparer",
            "source",
            "license",
        ],
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from ultrabench_eval.cli.prepare_command import run_prepare

    return run_prepare(args)


def cmd_probes(args: argparse.Namespace) -> int:
    from ultrabench_eval.core.registry import PROBES

    _print_table(
        [
            {"name": n, "description": (getattr(p, "__doc__", "") or "").strip().splitlines()[0]}
            for n, p in PROBES.items()
        ],
        ["name", "description"],
    )
    return 0


def cmd_corruptions(args: argparse.Namespace) -> int:
    from ultrabench_eval.corruptions import grid, listing

    if getattr(args, "corruptions_command", None) == "show":
        return grid.command(args)
    print(listing.render(), end="")
    return 0


def bench_config(args: argparse.Namespace) -> Any:
    """A BenchConfig from the flags `bench` and `sweep` share."""
    from ultrabench_eval.data import synth
    from ultrabench_eval.protocols.config import WEIGHT_FREE_MODELS, BenchConfig

    probe_options: dict[str, Any] = {}
    for item in args.probe_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--probe-option '{item}' must be KEY=VALUE (e.g. standardize=true)")
        probe_options[key.strip()] = yaml.safe_load(value)
    if args.probe_backend:
        probe_options["backend"] = args.probe_backend
    if args.class_weight:
        probe_options["class_weight"] = args.class_weight
    return BenchConfig(
        models=args.model or list(WEIGHT_FREE_MODELS),
        tasks=args.tasks or synth.default_synth_tasks(),
        data_root=config.data_root(args.data),
        cache_root=config.cache_root(args.cache),
        results_root=config.results_root(args.results),
        weights=args.weights,
        pooling=args.pooling,
        probe=args.probe,
        probe_options=probe_options,
        seeds=args.seeds,
        fractions=args.fractions,
        shots=args.shots,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from ultrabench_eval.data import synth
    from ultrabench_eval.protocols import bench

    cfg = bench_config(args)
    synth.generate_missing_synth(cfg.tasks, cfg.data_root, log=_info)
    _print_leaderboard(bench.run(cfg, log=_info), cfg.results_root)
    return 0


def cmd_fewshot(args: argparse.Namespace) -> int:
    from ultrabench_eval.data import synth
    from ultrabench_eval.protocols import bench
    from ultrabench_eval.report import leaderboard

    cfg = bench_config(args)
    synth.generate_missing_synth(cfg.tasks, cfg.data_root, log=_info)
    records = bench.run(cfg, log=_info)
    print(leaderboard.render_fewshot(records), end="")
    return 0


def cmd_robust(args: argparse.Namespace) -> int:
    """`ubench robust`: run the protocol, print a table per task, save it beside the records."""
    from ultrabench_eval.corruptions.presets import parse_severities, suite
    from ultrabench_eval.data import synth
    from ultrabench_eval.protocols import robust

    if args.fractions or args.shots:
        raise UserError(
            "robust fits its probe on every clean training label: drop --fractions and --shots"
        )
    cfg = bench_config(args)
    severities = parse_severities(args.severities) if args.severities else None
    pairs = suite(args.corruptions, args.preset, severities)
    reference = None if args.reference.lower() in ("", "none") else args.reference
    title = args.preset or ", ".join(args.corruptions)
    synth.generate_missing_synth(cfg.tasks, cfg.data_root, log=_info)
    config = robust.RobustConfig(cfg, pairs, reference, args.corruption_seed)
    records = robust.run(config, log=_info)
    text = robust.render(robust.summarise(records, reference), reference, title)
    path = robust.write_summary(cfg.results_root, text)
    print(text, end="")
    _info(f"records in {cfg.results_root}, this table in {path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ultrabench_eval.data import synth
    from ultrabench_eval.protocols import bench, sweep

    cfg = bench_config(args)
    synth.generate_missing_synth(cfg.tasks, cfg.data_root, log=_info)
    bench.check(cfg)  # every user error shows here, before anything is submitted
    cluster = sweep.ClusterOptions(
        partition=args.partition,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        mem_gb=args.mem_gb,
        timeout_min=args.timeout_min,
        account=args.account,
    )
    jobs = sweep.submit(cfg, Path(args.log_dir), executor=args.executor, cluster=cluster)
    for model, job in zip(cfg.models, jobs, strict=True):
        _info(f"submitted {model}: job {job.job_id} (logs in {args.log_dir})")
    if args.no_wait:
        return 0
    failed = []
    for model, job in zip(cfg.models, jobs, strict=True):
        try:
            job.result()
        except Exception as exc:  # the job's own traceback is in its log
            failed.append(model)
            _info(f"job for {model} failed: {str(exc).strip().splitlines()[-1]}")
    from ultrabench_eval.results import record as results

    wanted = set(cfg.models)
    records = [
        r
        for r in results.read_records(cfg.results_root)
        if r["model"]["name"] in wanted and r["task"]["name"] in set(cfg.tasks)
    ]
    _print_leaderboard(records, cfg.results_root)
    return 1 if failed else 0


def _print_leaderboard(records: list[dict[str, Any]], results_root: Path) -> None:
    from ultrabench_eval.core import atomic
    from ultrabench_eval.report import leaderboard

    table = leaderboard.render_markdown(records)
    atomic.write_text(results_root / "leaderboard.md", table)
    print(table, end="")


def cmd_extract(args: argparse.Namespace) -> int:
    from ultrabench_eval.features.extract_run import ExtractConfig, run_extraction

    cfg = ExtractConfig(
        models=args.model,
        tasks=args.tasks,
        data_root=config.data_root(args.data),
        cache_root=config.cache_root(args.cache),
        weights=args.weights,
        splits=tuple(args.splits),
        views=args.views,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        compile=args.compile,
        channels_last=args.channels_last,
        progress=not args.no_progress,
    )
    if cfg.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    run_extraction(cfg, log=_info)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from ultrabench_eval.features import cache_admin

    root = config.cache_root(args.cache)
    found = cache_admin.entries(root)
    if args.cache_command == "ls":
        rows = [_cache_row(e) for e in found]
        _print_table(rows, ["kind", "name", "what", "images", "size"])
        total = sum(e.bytes for e in found)
        print(f"{len(found)} entries, {total / 1e6:.1f} MB in {root}")
        return 0
    chosen = cache_admin.select(
        found,
        models=args.model,
        tasks=args.task,
        datasets=args.dataset,
        images=args.images,
        everything=args.all,
    )
    for entry in chosen:
        print(
            ("would remove " if args.dry_run else "removing ")
            + _cache_row(entry)["what"]
            + f" ({entry.kind} {entry.name})"
        )
    freed = sum(e.bytes for e in chosen) if args.dry_run else cache_admin.remove(chosen)
    verb = "would free" if args.dry_run else "freed"
    print(f"{len(chosen)} entries, {verb} {freed / 1e6:.1f} MB")
    return 0


def _cache_row(entry: Any) -> dict[str, Any]:
    d = entry.detail
    if entry.kind == "features":
        dims = ", ".join(f"{k} {v}" for k, v in d["dims"].items())
        what = f"{d['task']}/{d['split']}/{d['view']} [{dims}] {d['fingerprint']}"
    else:
        what = f"{d['split']} {d['size']}px {d['interpolation']}"
    return {
        "kind": entry.kind,
        "name": entry.name,
        "what": what,
        "images": d["images"],
        "size": f"{entry.bytes / 1e6:.1f} MB",
    }


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ultrabench_eval.report import leaderboard
    from ultrabench_eval.results import record as results

    records = results.read_records(config.results_root(args.results))
    print(leaderboard.render(records, args.format), end="")
    return 0


def _info(message: str) -> None:
    sys.stderr.write(message + "\n")


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from tabulate import tabulate

    body = [[_short(row.get(c)) for c in columns] for row in rows]
    print(tabulate(body, headers=columns, tablefmt="github", disable_numparse=True))


def _short(value: Any, limit: int = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value / 1e6:.1f}M" if value >= 100_000 else str(value)
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
