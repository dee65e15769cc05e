"""The robustness protocol: probes fitted on clean features, scored on corrupted test images.

For each model and task: clean train, validation and test features, and test features of every
corrupted view (`views.View`, applied on the device inside the scan mask), all through the
feature cache. The bench's probe is fitted once per seed on the clean training features and
chooses its settings on clean validation features; its test predictions are then taken on the
clean and every corrupted test set at once. One result record per view, in the bench's format,
with `protocol.view` (`speckle-s3`), `protocol.corruption`, `protocol.severity` and the
corruption's parameters; the clean record is the bench's own.

Summary scores per model and task, from the records alone (`summarise`):

- per corruption, the mean macro-F1 over its severities;
- the mean over every corrupted view and its relative drop from clean, in %;
- the corruption error CE_c = sum_s E(c, s) / sum_s E_ref(c, s) x 100, E = 100 - macro-F1, the
  error relative to a reference model (`pixels` by default), and its mean over corruptions mCE,
  as ImageNet-C's (Hendrycks & Dietterich, 2019). 100: as robust as the reference; lower is
  better.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import Dataset
from ultrabench_eval.data.task_card import SPLITS
from ultrabench_eval.features.extract import cached_features
from ultrabench_eval.features.stores import open_task_stores, store_resize
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.probes.base import ProbeResult
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.probes.metrics import macro_f1
from ultrabench_eval.protocols.bench import check, split_features
from ultrabench_eval.protocols.bench import inputs_digest as bench_inputs_digest
from ultrabench_eval.protocols.bench import make_record as bench_record
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.results import record as results

DEFAULT_REFERENCE = "pixels"
FULL = Budget(fraction=1.0)  # the protocol trains on every clean training label
SUMMARY_FILE = "robustness.md"


@dataclass
class RobustConfig:
    bench: BenchConfig  # models, tasks, folders, probe, seeds, device...
    suite: list[tuple[str, int]]  # (corruption spec, severity), see corruptions.presets.suite
    reference: str | None = DEFAULT_REFERENCE  # None: no corruption error
    seed: int = 0  # the corruptions' seed

    def views(self) -> list[View]:
        return [View.parse(f"{spec}:{severity}", seed=self.seed) for spec, severity in self.suite]


@dataclass
class Summary:
    """One model on one task."""

    clean: float
    per_corruption: dict[str, float]  # mean macro-F1 over severities
    per_view: dict[str, float]  # view label -> macro-F1 (seed mean)
    mean_corrupted: float
    relative_drop: float | None  # % of the clean score lost
    corruption_error: dict[str, float | None] = field(default_factory=dict)  # CE per corruption
    mce: float | None = None


def run(config: RobustConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every model (and the reference) on every task: write and return the records (the clean
    ones and one per corrupted view)."""
    if not config.suite:
        raise UserError("no corruption given: pass --corruptions NAME[,NAME2] or --preset NAME")
    views = config.views()  # unknown corruptions and severities fail here, before any work
    adapters, poolings, datasets, device = check(config.bench)
    names = [a.name for a in adapters]
    if config.reference and config.reference not in names:
        reference = make_adapter(config.reference)
        adapters.append(reference)
        poolings.append(reference.default_pooling)
    written = []
    for index, (adapter, pooling) in enumerate(zip(adapters, poolings, strict=True)):
        started = time.perf_counter()
        weights = config.bench.weights if index < len(names) else None
        adapter.load(weights).to(device)
        load_s = time.perf_counter() - started
        for dataset in datasets:
            for record, reused in _run_task(adapter, dataset, pooling, config, views, load_s):
                if not reused:
                    results.write_record(config.bench.results_root, record)
                how = "reused record" if reused else "written"
                log(
                    f"{adapter.name:>16} | {dataset.card.name:<16} | "
                    f"{record['protocol']['id']:<34} | macro-F1 {record['scores']['mean']:5.1f}"
                    f" | {how}"
                )
                written.append(record)
    return written


def _run_task(
    adapter: Adapter,
    dataset: Dataset,
    pooling: str,
    config: RobustConfig,
    views: list[View],
    load_s: float,
) -> list[tuple[dict[str, Any], bool]]:
    """(record, reused) for the clean view then each corrupted one."""
    cfg = config.bench
    card = dataset.card
    size, interpolation = store_resize(adapter, cfg.image_size)
    started = time.perf_counter()
    stores = open_task_stores(
        dataset,
        size,
        interpolation,
        cfg.cache_root,
        workers=cfg.workers,
        progress=cfg.progress,
    )
    store_s = round(time.perf_counter() - started, 3)
    clean_digest = bench_inputs_digest(adapter, pooling, dataset, stores, cfg, FULL)
    digests = {"clean": clean_digest}
    digests.update({v.label: view_digest(clean_digest, v) for v in views})
    ids = {"clean": results.protocol_id(cfg.probe, FULL)}
    ids.update({v.label: results.protocol_id(cfg.probe, FULL, v.label) for v in views})
    existing = {} if cfg.overwrite else _existing(cfg, adapter.name, card.name, ids, digests)
    order = ["clean", *[v.label for v in views]]
    if all(label in existing for label in order):
        return [(existing[label], True) for label in order]

    timings: dict[str, Any] = {"load_s": round(load_s, 3), "store_s": store_s, "features_s": {}}
    features, cached = split_features(adapter, card, stores, pooling, cfg, timings)
    tests = [features["test"]]
    for view in views:
        found = cached_features(
            adapter,
            card.name,
            "test",
            stores["test"],
            cfg.cache_root,
            batch_size=cfg.batch_size,
            view=view,
        )
        timings["features_s"][f"test/{view.label}"] = round(found.seconds, 3)
        cached = cached and found.from_cache
        tests.append(found.features[pooling])
    timings["features_cached"] = cached

    labels = {name: dataset.splits[name].labels for name in SPLITS}
    started = time.perf_counter()
    per_view = fit_once(cfg, card.num_classes, features, labels, tests)
    timings["probe_s"] = round(time.perf_counter() - started, 3)
    out = []
    for label, view, per_seed in zip(order, [None, *views], per_view, strict=True):
        if label in existing:
            out.append((existing[label], True))
            continue
        record = bench_record(
            adapter,
            card,
            dataset,
            pooling,
            cfg,
            FULL,
            per_seed,
            {
                **timings,
                "features_s": dict(timings["features_s"]),
                "image_store": [size, interpolation],
            },
            digests[label],
        )
        if view is not None:
            _mark_view(record, view, cfg.probe)
        out.append((record, False))
    return out


def view_digest(clean_digest: str, view: View) -> str:
    """A corrupted record's inputs: the clean protocol's and the view (its corruptions, their
    parameters and code version, severity and seed)."""
    payload = {"clean": clean_digest, "view": view.name, "parameters": view.parameters()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _existing(
    cfg: BenchConfig, model: str, task: str, ids: dict[str, str], digests: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Records on disk whose inputs are those of this run, by view label."""
    out = {}
    for label, protocol in ids.items():
        path = results.record_path(cfg.results_root, model, task, protocol)
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("inputs_sha256") == digests[label]:
            out[label] = record
    return out


def fit_once(
    cfg: BenchConfig,
    n_classes: int,
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    tests: list[np.ndarray],
) -> list[list[tuple[int, int, ProbeResult]]]:
    """Fit the probe once per seed on clean train (chosen on clean validation) and predict every
    test set in `tests` with it: per test set, (seed, train size, result) per seed, as the bench
    builds records from."""
    probe = PROBES.get(cfg.probe)(**cfg.probe_options)
    train_y = labels["train"]
    subsets, seeds = [], []
    for seed in range(cfg.seeds):
        if probe.uses_seed or not subsets:  # a seedless fit on all labels is the same fit
            subsets.append(FULL.indices(train_y, seed, n_classes))
            seeds.append(seed)
    stacked = np.concatenate(tests)
    test_y = labels["test"]
    fitted = probe.fit_predict_subsets(
        features["train"],
        train_y,
        subsets,
        features["validation"],
        labels["validation"],
        stacked,
        np.tile(test_y, len(tests)),
        n_classes=n_classes,
        seeds=seeds,
    )
    n = len(test_y)
    out = []
    for t in range(len(tests)):
        per_seed = []
        for seed in range(cfg.seeds):
            whole = fitted[min(seed, len(fitted) - 1)]
            pred = whole.test_pred[t * n : (t + 1) * n]
            one = ProbeResult(
                test_pred=pred,
                val_pred=whole.val_pred,
                test_macro_f1=100.0 * macro_f1(test_y, pred),
                val_macro_f1=whole.val_macro_f1,
                params=whole.params,
                seconds=whole.seconds,
            )
            per_seed.append((seed, len(subsets[min(seed, len(subsets) - 1)]), one))
        out.append(per_seed)
    return out


def _mark_view(record: dict[str, Any], view: View, probe: str) -> None:
    protocol = record["protocol"]
    protocol["id"] = results.protocol_id(probe, FULL, view.label)
    protocol["view"] = view.label
    protocol["view_key"] = view.name
    protocol["corruption"] = view.corruption
    protocol["severity"] = view.severity
    protocol["corruption_seed"] = view.seed
    protocol["corruption_parameters"] = view.parameters()


# -- summary scores ---------------------------------------------------------------------------


def summarise(
    records: list[dict[str, Any]], reference: str | None = DEFAULT_REFERENCE
) -> dict[str, dict[str, Summary]]:
    """{task: {model: Summary}} from clean and corrupted records of one probe protocol. The
    corruption error needs the reference model's records on the same task and views."""
    clean: dict[tuple[str, str], float] = {}
    views: dict[tuple[str, str], dict[str, tuple[str, float]]] = defaultdict(dict)
    for record in records:
        key = (record["task"]["name"], record["model"]["name"])
        protocol = record["protocol"]
        if protocol.get("view", "clean") == "clean":
            clean[key] = record["scores"]["mean"]
        elif protocol.get("corruption"):
            views[key][protocol["view"]] = (protocol["corruption"], record["scores"]["mean"])
    out: dict[str, dict[str, Summary]] = defaultdict(dict)
    for key, by_view in views.items():
        if key not in clean:
            continue
        per_corruption: dict[str, list[float]] = defaultdict(list)
        for corruption, score in by_view.values():
            per_corruption[corruption].append(score)
        scores = [s for _, s in by_view.values()]
        mean_corrupted = float(np.mean(scores))
        base = clean[key]
        out[key[0]][key[1]] = Summary(
            clean=base,
            per_corruption={c: float(np.mean(v)) for c, v in per_corruption.items()},
            per_view={label: s for label, (_, s) in by_view.items()},
            mean_corrupted=mean_corrupted,
            relative_drop=100.0 * (base - mean_corrupted) / base if base > 0 else None,
        )
    if reference:
        for task, by_model in out.items():
            ref = by_model.get(reference)
            for summary in by_model.values():
                _corruption_errors(summary, ref, views[(task, reference)] if ref else {})
    return dict(out)


def _corruption_errors(
    summary: Summary, ref: Summary | None, ref_views: dict[str, tuple[str, float]]
) -> None:
    """CE per corruption over the views both have, and their mean (mCE)."""
    if ref is None:
        return
    errors: dict[str, list[float]] = defaultdict(list)
    ref_errors: dict[str, list[float]] = defaultdict(list)
    for label, score in summary.per_view.items():
        if label not in ref_views:
            continue
        corruption, ref_score = ref_views[label]
        errors[corruption].append(100.0 - score)
        ref_errors[corruption].append(100.0 - ref_score)
    for corruption in summary.per_corruption:
        denominator = sum(ref_errors.get(corruption, []))
        summary.corruption_error[corruption] = (
            100.0 * sum(errors[corruption]) / denominator if denominator > 0 else None
        )
    known = [v for v in summary.corruption_error.values() if v is not None]
    summary.mce = float(np.mean(known)) if known else None


def render(summaries: dict[str, dict[str, Summary]], reference: str | None, title: str = "") -> str:
    """A markdown table per task: rows models; columns clean, each corruption's mean over
    severities, the mean over all views, the relative drop and mCE."""
    parts = []
    for task in sorted(summaries):
        by_model = summaries[task]
        corruptions = sorted({c for s in by_model.values() for c in s.per_corruption})
        rows = []
        for model, s in sorted(by_model.items(), key=lambda item: -item[1].mean_corrupted):
            rows.append(
                [
                    model,
                    f"{s.clean:.1f}",
                    *[_fmt(s.per_corruption.get(c)) for c in corruptions],
                    f"{s.mean_corrupted:.1f}",
                    _fmt(s.relative_drop, " %"),
                    _fmt(s.mce),
                ]
            )
        headers = ["model", "clean", *corruptions, "mean", "drop", f"mCE (ref {reference})"]
        heading = f"### {task}" + (f", {title}" if title else "")
        parts.append(
            f"{heading}: test macro-F1 (x100), seed mean; probe fitted on clean features\n\n"
            + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
            + "\n\n_corruption columns: mean over severities; mean: over every corrupted view; "
            "drop: (clean - mean) / clean; mCE: mean over corruptions of the summed error "
            f"(100 - F1) relative to {reference}'s, x100 (lower is better)_\n"
        )
    return "\n".join(parts) if parts else "no robustness records\n"


def _fmt(value: float | None, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.1f}{suffix}"


def write_summary(results_root: Path, text: str) -> Path:
    path = Path(results_root) / SUMMARY_FILE
    atomic.write_text(path, text)
    return path
