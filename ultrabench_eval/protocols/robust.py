"""The robustness protocol: probes fitted on clean features, scored on corrupted test images.

For each model and task: clean train, validation and test features, and test features of every
corrupted view (`views.View`, applied on the device inside the scan mask), all through the
feature cache. The bench's probe is fitted once per seed on the clean training features and
chooses its settings on clean validation features; its test predictions are then taken on the
clean and every corrupted test set at once. One result record per view, in the bench's format,
with `protocol.view` (`speckle-s3`), `protocol.corruption`, `protocol.severity` and the
corruption's parameters; the clean record is the bench's own. The summary scores (mean over
severities, relative drop, mCE) are computed from the records by `results.robustness`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ultrabench_eval.core import atomic
from ultrabench_eval.core.digests import json_digest
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import Dataset
from ultrabench_eval.data.task_card import SPLITS
from ultrabench_eval.features.extract import cached_features
from ultrabench_eval.features.stores import open_task_stores, store_resize
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.probes.base import Probe, ProbeResult
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.probes.metrics import macro_f1
from ultrabench_eval.protocols.bench import (
    check,
    feature_timings,
    make_probe,
    plan_fits,
    probe_device,
    split_features,
    store_timings,
)
from ultrabench_eval.protocols.bench import inputs_digest as bench_inputs_digest
from ultrabench_eval.protocols.config import DEFAULT_REFERENCE, BenchConfig
from ultrabench_eval.protocols.reuse import Expected, reusable_records
from ultrabench_eval.results.build import SeedResult, build_record, run_stages
from ultrabench_eval.results.record import (
    ResultRecord,
    metric_label,
    protocol_id,
    write_record,
)

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


def run(config: RobustConfig, log: Callable[[str], None] = print) -> list[ResultRecord]:
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
                    write_record(config.bench.results_root, record)
                how = "reused record" if reused else "written"
                log(
                    f"{adapter.name:>16} | {dataset.card.name:<16} | "
                    f"{record.protocol_id:<34} | {metric_label(record.scores.metric)} "
                    f"{record.scores.text():>12} | {how}"
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
) -> list[tuple[ResultRecord, bool]]:
    """(record, reused) for the clean view then each corrupted one."""
    cfg = config.bench
    card = dataset.card
    if card.is_segmentation:
        from ultrabench_eval.protocols.segmentation import robust_segmentation_task

        return robust_segmentation_task(adapter, dataset, cfg, views, load_s)
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
    store = store_timings(stores, time.perf_counter() - started)
    clean_digest = bench_inputs_digest(adapter, pooling, dataset, stores, cfg, FULL)
    options = cfg.probe_options
    expected = {"clean": Expected(protocol_id(cfg.probe, FULL, options=options), clean_digest)}
    for view in views:
        expected[view.label] = Expected(
            protocol_id(cfg.probe, FULL, view.label, options), view_digest(clean_digest, view)
        )
    existing = reusable_records(cfg, adapter.name, card.name, expected)
    order = list(expected)
    if all(label in existing for label in order):
        return [(existing[label], True) for label in order]

    timings: dict[str, Any] = {"load_s": round(load_s, 3), **store, "features_s": {}}
    extracted_on: set[str] = set()
    features, cached = split_features(adapter, card, stores, pooling, cfg, timings, extracted_on)
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
        feature_timings(
            timings, f"test/{view.label}", found.seconds, len(stores["test"]), found.from_cache
        )
        cached = cached and found.from_cache
        extracted_on.add(found.device or "unknown")
        tests.append(found.features[pooling])
    timings["features_cached"] = cached

    labels = {name: dataset.splits[name].labels for name in SPLITS}
    started = time.perf_counter()
    probe = make_probe(cfg)
    stages = run_stages(adapter, extracted_on, probe_device(probe))
    per_view = fit_once(cfg, card.num_classes, features, labels, tests, probe)
    probe_s = round(time.perf_counter() - started, 3)
    timings.update(
        probe_s=probe_s,
        probe_total_s=probe_s,  # one budget: all of it
        probe_fits=len(per_view[0]),  # distinct fits, each scored on every view
        probe_problems=cfg.seeds,
    )
    out = []
    for label, view, per_seed in zip(order, [None, *views], per_view, strict=True):
        if label in existing:
            out.append((existing[label], True))
            continue
        record = build_record(
            adapter,
            dataset,
            pooling,
            cfg.probe,
            cfg.probe_options,
            FULL,
            per_seed,
            image_store=[size, interpolation],
            timings=timings,
            inputs_sha256=expected[label].inputs_sha256,
            view=view,
            stages=stages,
            seeds_requested=cfg.seeds,
        )
        out.append((record, False))
    return out


def view_digest(clean_digest: str, view: View) -> str:
    """A corrupted record's inputs: the clean protocol's and the view (its corruptions, their
    parameters and code version, severity and seed)."""
    payload = {"clean": clean_digest, "view": view.name, "parameters": view.parameters()}
    return json_digest(payload)


def fit_once(
    cfg: BenchConfig,
    n_classes: int,
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    tests: list[np.ndarray],
    probe: Probe | None = None,
) -> list[list[SeedResult]]:
    """Fit the probe once per seed on clean train (chosen on clean validation) and predict every
    test set in `tests` with it: per test set, (seed, train size, result) per distinct fit, as
    the bench builds records from (seeds a probe ignores share one fit, `FitPlan.per_fit`).
    `probe` defaults to the bench's (`make_probe`)."""
    probe = probe or make_probe(cfg)
    train_y, test_y = labels["train"], labels["test"]
    plan = plan_fits([FULL], cfg.seeds, train_y, n_classes, probe.uses_seed)
    fitted = probe.fit_predict_subsets(
        features["train"],
        train_y,
        plan.subsets,
        features["validation"],
        labels["validation"],
        np.concatenate(tests),
        np.tile(test_y, len(tests)),
        n_classes=n_classes,
        seeds=plan.seeds,
    )
    n = len(test_y)
    out = []
    for t in range(len(tests)):
        # each fit's answers on test set t alone, scored on its own
        on_this = [
            ProbeResult(
                test_pred=whole.test_pred[t * n : (t + 1) * n],
                val_pred=whole.val_pred,
                test_macro_f1=100.0 * macro_f1(test_y, whole.test_pred[t * n : (t + 1) * n]),
                val_macro_f1=whole.val_macro_f1,
                params=whole.params,
                seconds=whole.seconds,
            )
            for whole in fitted
        ]
        out.append(plan.per_fit(0, on_this))
    return out


def write_summary(results_root: Path, text: str) -> Path:
    """The `ubench robust` table beside the records."""
    path = Path(results_root) / SUMMARY_FILE
    atomic.write_text(path, text)
    return path
