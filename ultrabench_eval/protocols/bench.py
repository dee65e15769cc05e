"""One benchmark run: models x tasks -> features (cached) -> probes -> result records."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import ultrabench_eval
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.digests import json_digest
from ultrabench_eval.core.registry import PROBES, TASKS
from ultrabench_eval.core.writable import check_writable_folder
from ultrabench_eval.data.dataset import Dataset, open_dataset
from ultrabench_eval.data.task_card import SPLITS, TaskCard
from ultrabench_eval.features.cache_identity import feature_fingerprint, package_digest
from ultrabench_eval.features.extract import cached_features
from ultrabench_eval.features.stores import open_task_stores, store_resize
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.models.factory import make_adapter, pooling_of
from ultrabench_eval.probes import fewshot
from ultrabench_eval.probes.base import Probe
from ultrabench_eval.protocols.config import RECORD_LOGIC_VERSION, BenchConfig, validate
from ultrabench_eval.protocols.reuse import Expected, reusable_records
from ultrabench_eval.results.build import SeedResult, build_record, run_stages
from ultrabench_eval.results.record import ResultRecord, protocol_id, write_record


def check(config: BenchConfig) -> tuple[list[Adapter], list[str], list[Dataset], torch.device]:
    """Everything a user can get wrong, checked before any work: the adapters (not loaded),
    their poolings, the validated datasets and the device."""
    validate(config)
    check_writable_folder(config.results_root, "results folder", "--results")
    cards = [TASKS.get(name) for name in config.tasks]
    adapters = [make_adapter(name) for name in config.models]
    poolings = [pooling_of(adapter, config.pooling) for adapter in adapters]
    overlap = "allow" if config.allow_overlap else "refuse"
    datasets = [
        open_dataset(card, config.data_root, overlap=overlap, digest_cache=config.cache_root)
        for card in cards
    ]
    return adapters, poolings, datasets, resolve_device(config.device)


def run(config: BenchConfig, log: Callable[[str], None] = print) -> list[ResultRecord]:
    """Run every model on every task; write and return the result records."""
    adapters, poolings, datasets, device = check(config)
    written = []
    for adapter, pooling in zip(adapters, poolings, strict=True):
        started = time.perf_counter()
        adapter.load(config.weights).to(device)
        load_s = time.perf_counter() - started
        for dataset in datasets:
            for record, reused in _run_task(adapter, dataset, pooling, config, load_s):
                if reused:
                    how = "reused record"
                else:
                    write_record(config.results_root, record)
                    how = "cached features" if record.timings["features_cached"] else "extracted"
                log(
                    f"{adapter.name:>16} | {dataset.card.name:<16} | {record.protocol_id:<12}"
                    f" | macro-F1 {record.scores.mean:5.1f} ± {record.scores.std:.1f}"
                    f" | {how}"
                )
                written.append(record)
    return written


def _run_task(
    adapter: Adapter, dataset: Dataset, pooling: str, config: BenchConfig, load_s: float
) -> list[tuple[ResultRecord, bool]]:
    """(record, reused) per label budget. A record whose inputs are unchanged is reused unless
    `config.overwrite`: an interrupted or repeated run redoes only what is missing."""
    card = dataset.card
    size, interpolation = store_resize(adapter, config.image_size)
    timings: dict[str, Any] = {"load_s": round(load_s, 3), "store_s": 0.0, "features_s": {}}
    started = time.perf_counter()
    stores = open_task_stores(
        dataset,
        size,
        interpolation,
        config.cache_root,
        workers=config.workers,
        progress=config.progress,
    )
    timings["store_s"] = round(time.perf_counter() - started, 3)
    budgets = config.budgets()
    digests = {b: inputs_digest(adapter, pooling, dataset, stores, config, b) for b in budgets}
    ids = {b: protocol_id(config.probe, b, options=config.probe_options) for b in budgets}
    expected = {b: Expected(ids[b], digests[b]) for b in budgets}
    reused = reusable_records(config, adapter.name, card.name, expected)
    todo = [b for b in budgets if b not in reused]
    if not todo:
        return [(reused[b], True) for b in budgets]

    extracted_on: set[str] = set()
    features, timings["features_cached"] = split_features(
        adapter, card, stores, pooling, config, timings, extracted_on
    )
    labels = {name: dataset.splits[name].labels for name in SPLITS}

    probe = make_probe(config)
    stages = run_stages(adapter, extracted_on, probe_device(probe))
    started = time.perf_counter()
    per_budget = _probe_all(probe, features, labels, card, todo, config.seeds)
    probe_s = round((time.perf_counter() - started) / len(todo), 3)
    fresh = {
        budget: build_record(
            adapter,
            dataset,
            pooling,
            config.probe,
            config.probe_options,
            budget,
            per_seed,
            image_store=[size, interpolation],
            timings={**timings, "probe_s": probe_s},
            inputs_sha256=digests[budget],
            stages=stages,
        )
        for budget, per_seed in zip(todo, per_budget, strict=True)
    }
    return [(reused[b], True) if b in reused else (fresh[b], False) for b in budgets]


def split_features(
    adapter: Adapter,
    card: TaskCard,
    stores: dict[str, Any],
    pooling: str,
    config: BenchConfig,
    timings: dict[str, Any],
    extracted_on: set[str] | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """Every split's clean features at `pooling`, from the cache or extracted; each split's
    seconds go into `timings["features_s"]`, the device that computed it into `extracted_on`.
    Also: whether every split came from the cache."""
    features, cached = {}, True
    for name in SPLITS:
        found = cached_features(
            adapter, card.name, name, stores[name], config.cache_root, batch_size=config.batch_size
        )
        timings["features_s"][name] = round(found.seconds, 3)
        cached = cached and found.from_cache
        features[name] = found.features[pooling]
        if extracted_on is not None:
            extracted_on.add(found.device or "unknown")
    return features, cached


def make_probe(config: BenchConfig) -> Probe:
    """The bench's probe, on the bench's device unless a probe option names another."""
    return PROBES.get(config.probe)(**{"device": config.device, **config.probe_options})


def probe_device(probe: Probe) -> str:
    """Where a probe fits: its torch device, or the CPU for a non-torch backend."""
    if getattr(probe, "backend", "torch") != "torch":
        return "cpu"
    return str(getattr(probe, "device", "cpu"))


def inputs_digest(
    adapter, pooling, dataset: Dataset, stores, config: BenchConfig, budget: fewshot.Budget
) -> str:
    """Everything a record's scores depend on: model and features (their cache key: adapter
    code, weights, pipeline code, precision, options), labels, protocol, the package's code."""
    payload = {
        "record_logic": RECORD_LOGIC_VERSION,
        "code": [ultrabench_eval.__version__, package_digest()],
        "model": feature_fingerprint(adapter),
        "pooling": pooling,
        "task": [dataset.card.name, list(dataset.card.classes), dataset.card.label_field],
        "splits": {
            name: [stores[name].content_hash, _labels_hash(split.ids, split.labels)]
            for name, split in dataset.splits.items()
        },
        "protocol": [config.probe, config.probe_options, budget.label, config.seeds],
    }
    return json_digest(payload)


def _labels_hash(ids: list[str], labels: np.ndarray) -> str:
    digest = hashlib.sha256("\n".join(ids).encode())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FitPlan:
    """The distinct probe fits behind every (budget, seed): a fit whose training subset and seed
    another cell already has is not made twice (when the fit ignores the seed, every seed at
    100 % shares one)."""

    subsets: list[np.ndarray]  # training indices of each distinct fit
    seeds: list[int]  # the seed each distinct fit is made with
    cells: list[list[int]]  # per budget, per seed: the index of its fit

    def per_seed(self, budget_index: int, fitted: Sequence[Any]) -> list[SeedResult]:
        """(seed, train size, result) per seed of one budget, from the fits' results."""
        return [
            SeedResult(seed, len(self.subsets[fit]), fitted[fit])
            for seed, fit in enumerate(self.cells[budget_index])
        ]


def plan_fits(
    budgets: Sequence[fewshot.Budget],
    seeds: int,
    train_labels: np.ndarray,
    n_classes: int,
    uses_seed: bool,
) -> FitPlan:
    """Which fits the (budget, seed) cells need, in the order they first appear."""
    fits: dict[tuple[bytes, int | None], int] = {}
    subsets, fit_seeds, cells = [], [], []
    for budget in budgets:
        row = []
        for seed in range(seeds):
            idx = budget.indices(train_labels, seed, n_classes)
            key = (idx.tobytes(), seed if uses_seed else None)
            if key not in fits:
                fits[key] = len(subsets)
                subsets.append(idx)
                fit_seeds.append(seed)
            row.append(fits[key])
        cells.append(row)
    return FitPlan(subsets, fit_seeds, cells)


def _probe_all(
    probe: Probe,
    features: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    card: TaskCard,
    budgets: list[fewshot.Budget],
    seeds: int,
) -> list[list[SeedResult]]:
    """Every (budget, seed) probe in one call, so a batched probe fits them all at once."""
    plan = plan_fits(budgets, seeds, labels["train"], card.num_classes, probe.uses_seed)
    fitted = probe.fit_predict_subsets(
        features["train"],
        labels["train"],
        plan.subsets,
        features["validation"],
        labels["validation"],
        features["test"],
        labels["test"],
        n_classes=card.num_classes,
        seeds=plan.seeds,
    )
    return [plan.per_seed(b, fitted) for b in range(len(budgets))]
