"""One benchmark run: models x tasks -> features (cached) -> probes -> result records."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

import ultrabench_eval
from ultrabench_eval.core.registry import PROBES, TASKS
from ultrabench_eval.data.dataset import Dataset, open_dataset
from ultrabench_eval.data.task_card import SPLITS, TaskCard
from ultrabench_eval.features.extract import cached_features, resolve_device, versions
from ultrabench_eval.features.feature_cache import ids_hash
from ultrabench_eval.features.stores import open_task_stores, store_resize
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.models.factory import make_adapter, pooling_of
from ultrabench_eval.probes import fewshot
from ultrabench_eval.protocols.config import RECORD_LOGIC_VERSION, BenchConfig, validate
from ultrabench_eval.results import record as results
from ultrabench_eval.results import stats


def check(config: BenchConfig) -> tuple[list[Adapter], list[str], list[Dataset], torch.device]:
    """Everything a user can get wrong, checked before any work: the adapters (not loaded),
    their poolings, the validated datasets and the device."""
    validate(config)
    cards = [TASKS.get(name) for name in config.tasks]
    adapters = [make_adapter(name) for name in config.models]
    poolings = [pooling_of(adapter, config.pooling) for adapter in adapters]
    datasets = [open_dataset(card, config.data_root) for card in cards]
    return adapters, poolings, datasets, resolve_device(config.device)


def run(config: BenchConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
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
                    results.write_record(config.results_root, record)
                    how = "cached features" if record["timings"]["features_cached"] else "extracted"
                log(
                    f"{adapter.name:>16} | {dataset.card.name:<16} | {record['protocol']['id']:<12}"
                    f" | macro-F1 {record['scores']['mean']:5.1f} ± {record['scores']['std']:.1f}"
                    f" | {how}"
                )
                written.append(record)
    return written


def _run_task(
    adapter: Adapter, dataset: Dataset, pooling: str, config: BenchConfig, load_s: float
) -> list[tuple[dict[str, Any], bool]]:
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
    reused = {} if config.overwrite else _reusable(config, adapter, card, digests)
    todo = [b for b in budgets if b not in reused]
    if not todo:
        return [(reused[b], True) for b in budgets]

    features, timings["features_cached"] = split_features(
        adapter, card, stores, pooling, config, timings
    )
    labels = {name: dataset.splits[name].labels for name in SPLITS}

    probe = PROBES.get(config.probe)(**config.probe_options)
    started = time.perf_counter()
    per_budget = _probe_all(probe, features, labels, card, todo, config.seeds)
    probe_s = round((time.perf_counter() - started) / len(todo), 3)
    fresh = {
        budget: make_record(
            adapter,
            card,
            dataset,
            pooling,
            config,
            budget,
            per_seed,
            {**timings, "probe_s": probe_s, "image_store": [size, interpolation]},
            digests[budget],
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
) -> tuple[dict[str, np.ndarray], bool]:
    """Every split's clean features at `pooling`, from the cache or extracted; each split's
    seconds go into `timings["features_s"]`. Also: whether every split came from the cache."""
    features, cached = {}, True
    for name in SPLITS:
        found = cached_features(
            adapter, card.name, name, stores[name], config.cache_root, batch_size=config.batch_size
        )
        timings["features_s"][name] = round(found.seconds, 3)
        cached = cached and found.from_cache
        features[name] = found.features[pooling]
    return features, cached


def inputs_digest(
    adapter, pooling, dataset: Dataset, stores, config: BenchConfig, budget: fewshot.Budget
) -> str:
    """Everything a record's scores depend on: model, features, labels, protocol, code."""
    payload = {
        "record_logic": RECORD_LOGIC_VERSION,
        "code": [ultrabench_eval.__version__, results.git_revision()],
        "model": adapter.fingerprint(),
        "pooling": pooling,
        "task": [dataset.card.name, list(dataset.card.classes), dataset.card.label_field],
        "splits": {
            name: [stores[name].content_hash, _labels_hash(split.ids, split.labels)]
            for name, split in dataset.splits.items()
        },
        "protocol": [config.probe, config.probe_options, budget.label, config.seeds],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _labels_hash(ids: list[str], labels: np.ndarray) -> str:
    digest = hashlib.sha256("\n".join(ids).encode())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _reusable(config: BenchConfig, adapter, card, digests: dict[float, str]) -> dict:
    out = {}
    for budget, digest in digests.items():
        path = results.record_path(
            config.results_root,
            adapter.name,
            card.name,
            results.protocol_id(config.probe, budget),
        )
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if record.get("inputs_sha256") == digest:
            out[budget] = record
    return out


def _probe_all(probe, features, labels, card: TaskCard, budgets, seeds: int) -> list[list]:
    """Every (budget, seed) probe in one call, so a batched probe fits them all at once.
    When the fit ignores the seed, equal subsets (every seed at 100 %) are fitted once."""
    plan = []  # (budget index, seed, subset key)
    subsets: dict[tuple[bytes, int | None], tuple[np.ndarray, int]] = {}
    for b_index, budget in enumerate(budgets):
        for seed in range(seeds):
            idx = budget.indices(labels["train"], seed, card.num_classes)
            key = (idx.tobytes(), seed if probe.uses_seed else None)
            subsets.setdefault(key, (idx, seed))
            plan.append((b_index, seed, key))
    keys = list(subsets)
    fitted = probe.fit_predict_subsets(
        features["train"],
        labels["train"],
        [subsets[k][0] for k in keys],
        features["validation"],
        labels["validation"],
        features["test"],
        labels["test"],
        n_classes=card.num_classes,
        seeds=[subsets[k][1] for k in keys],
    )
    by_key = dict(zip(keys, fitted, strict=True))
    out: list[list] = [[] for _ in budgets]
    for b_index, seed, key in plan:
        out[b_index].append((seed, len(subsets[key][0]), by_key[key]))
    return out


def make_record(adapter, card, dataset, pooling, config, budget, per_seed, timings, digest) -> dict:
    """The result record of one model x task x label budget from its per-seed probe results
    ((seed, train size, ProbeResult) each); the robustness protocol writes its views with it."""
    scores = np.array([r.test_macro_f1 for _, _, r in per_seed], dtype=np.float64)
    info = asdict(adapter.info)
    test = dataset.splits["test"]
    predictions = np.stack([r.test_pred for _, _, r in per_seed])
    interval = stats.bootstrap_ci(test.labels, predictions, card.num_classes, seed=0)
    return {
        "schema": results.SCHEMA,
        "inputs_sha256": digest,
        "model": {
            "name": adapter.name,
            "fingerprint": adapter.fingerprint(),
            "weights": adapter.weights_id(),
            "pooling": pooling,
            "input_spec": adapter.input_spec.as_dict(),
            "info": info,
        },
        "task": {
            "name": card.name,
            "dataset": card.dataset,
            "classes": list(card.classes),
            "split_sizes": {name: len(split) for name, split in dataset.splits.items()},
        },
        "protocol": {
            "id": results.protocol_id(config.probe, budget),
            "probe": config.probe,
            "probe_options": config.probe_options,
            "budget": budget.label,
            "fraction": budget.fraction,
            "shots": budget.shots,
            "view": "clean",
            "seeds": [seed for seed, _, _ in per_seed],
            "image_store": timings.pop("image_store"),
        },
        "scores": {
            "metric": "macro_f1",
            "per_seed": [round(float(s), 6) for s in scores],
            "mean": float(scores.mean()),
            # sample standard deviation over seeds (ddof=1); 0 for one seed
            "std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
            "val_per_seed": [round(float(r.val_macro_f1), 6) for _, _, r in per_seed],
            # bootstrap over test images of the seed-mean score (ultrabench_eval.results.stats)
            "ci95": [round(interval.low, 4), round(interval.high, 4)],
            "bootstrap_draws": interval.draws,
        },
        # what paired comparisons between models need: the same images, every seed's answers
        "test": {
            "ids_sha256": ids_hash(test.ids),
            "labels": test.labels.tolist(),
            "predictions_per_seed": predictions.tolist(),
        },
        "hyperparameters": {"per_seed": [r.params for _, _, r in per_seed]},
        "train_size_per_seed": [n for _, n, _ in per_seed],
        "timings": timings,
        "versions": versions(),
        "git_revision": results.git_revision(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
