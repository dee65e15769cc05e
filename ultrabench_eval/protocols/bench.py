"""One benchmark run: models x tasks -> features (cached) -> probes -> result records."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import ultrabench_eval
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.digests import json_digest
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import PROBES, TASKS
from ultrabench_eval.core.writable import check_writable_folder
from ultrabench_eval.data.dataset import Dataset, open_dataset
from ultrabench_eval.data.task_card import SPLITS, TaskCard
from ultrabench_eval.features.cache_identity import feature_fingerprint, package_digest
from ultrabench_eval.features.extract import cached_features
from ultrabench_eval.features.extract_tokens import cached_tokens
from ultrabench_eval.features.stores import open_task_stores, store_resize
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.models.factory import make_adapter, pooling_of
from ultrabench_eval.probes import fewshot
from ultrabench_eval.probes.base import Probe
from ultrabench_eval.protocols.config import RECORD_LOGIC_VERSION, BenchConfig, validate
from ultrabench_eval.protocols.reuse import Expected, reusable_records
from ultrabench_eval.results.build import SeedResult, build_record, run_stages
from ultrabench_eval.results.record import (
    ResultRecord,
    metric_label,
    protocol_id,
    write_record,
)

TOKENS = "tokens"  # a record's `model.pooling` when its probe read the patch tokens


def check(config: BenchConfig) -> tuple[list[Adapter], list[str], list[Dataset], torch.device]:
    """Everything a user can get wrong, checked before any work: the adapters (not loaded),
    their poolings, the validated datasets and the device."""
    validate(config)
    check_writable_folder(config.results_root, "results folder", "--results")
    cards = [TASKS.get(name) for name in config.tasks]
    adapters = [make_adapter(name) for name in config.models]
    poolings = [pooling_of(adapter, config.pooling) for adapter in adapters]
    overlap = "allow" if config.allow_overlap else "refuse"
    _check_token_work(config, cards, adapters)
    datasets = [
        open_dataset(card, config.data_root, overlap=overlap, digest_cache=config.cache_root)
        for card in cards
    ]
    return adapters, poolings, datasets, resolve_device(config.device)


def reads_tokens(probe: str) -> bool:
    """Whether the probe fits on patch tokens (attentive) rather than pooled features."""
    return bool(getattr(PROBES.get(probe), "needs_tokens", False))


def _check_token_work(config: BenchConfig, cards: list[TaskCard], adapters: list[Adapter]) -> None:
    """Segmentation tasks and probes on patch tokens need models that give tokens; the dense
    probe segments, so it cannot be the probe of a classification task."""
    classification = [card.name for card in cards if not card.is_segmentation]
    if config.probe == "dense" and classification:
        raise UserError(
            f"--probe dense segments, but {', '.join(classification)} are classification tasks "
            "(segmentation tasks always use the dense probe: pick a classifier probe for the "
            "others, e.g. --probe us-jepa-2026)"
        )
    segmentation = [card.name for card in cards if card.is_segmentation]
    on_tokens = reads_tokens(config.probe)
    if not segmentation and not (on_tokens and classification):
        return
    for adapter in adapters:
        if not adapter.gives_tokens:
            why = (
                f"task(s) {', '.join(segmentation)}" if segmentation else f"--probe {config.probe}"
            )
            raise UserError(
                f"model {adapter.name} gives no patch tokens, which {why} need(s) (its adapter "
                "has no forward_tokens): leave those tasks out, or use a model that gives them"
            )


def run(config: BenchConfig, log: Callable[[str], None] = print) -> list[ResultRecord]:
    """Run every model on every task; write and return the result records. Last, one line
    per stage (store, features, probes, records) with its seconds and items per second."""
    adapters, poolings, datasets, device = check(config)
    written = []
    times = RunTimes()
    for adapter, pooling in zip(adapters, poolings, strict=True):
        started = time.perf_counter()
        adapter.load(config.weights).to(device)
        load_s = time.perf_counter() - started
        for dataset in datasets:
            for record, reused in run_task(adapter, dataset, pooling, config, load_s, times):
                if reused:
                    how = "reused record"
                else:
                    started = time.perf_counter()
                    write_record(config.results_root, record)
                    times.records_s += time.perf_counter() - started
                    how = "cached features" if record.timings["features_cached"] else "extracted"
                times.records += 1
                times.written += not reused
                log(
                    f"{adapter.name:>16} | {dataset.card.name:<16} | {record.protocol_id:<12}"
                    f" | {metric_label(record.scores.metric)} {record.scores.text():>12} | {how}"
                )
                written.append(record)
    for line in times.summary():
        log(line)
    return written


@dataclass
class RunTimes:
    """What each stage took in one run, summed over models x tasks (`summary`). Only this
    run's work counts: a reused record costs its store's opening, nothing else."""

    store_s: float = 0.0
    store_images: int = 0
    store_build: dict[str, float] = field(default_factory=dict)  # summed `build_stats`
    features_s: float = 0.0
    features_images: int = 0
    features_cached_images: int = 0
    probe_s: float = 0.0
    fits: int = 0
    problems: int = 0  # (budget, seed) cells the fits answer
    records_s: float = 0.0  # building (bootstrap intervals) and writing the records
    records: int = 0
    written: int = 0

    def add_stores(self, timings: Mapping[str, Any]) -> None:
        self.store_s += timings["store_s"]
        self.store_images += timings["store_images"]
        for stats in timings["store_build"].values():
            for key in ("images", "seconds", *_BUILD_STEPS):
                if isinstance(stats.get(key), (int, float)):
                    self.store_build[key] = self.store_build.get(key, 0) + stats[key]
            workers = stats.get("workers")
            if isinstance(workers, (int, float)):
                self.store_build["workers"] = max(self.store_build.get("workers", 0), workers)

    def add_features(self, timings: Mapping[str, Any]) -> None:
        for name, seconds in timings["features_s"].items():
            images = timings["features_images"].get(name, 0)
            self.features_s += seconds
            self.features_images += images
            self.features_cached_images += images if timings["features_from_cache"][name] else 0

    def summary(self) -> list[str]:
        """One line per stage: seconds, items, items per second, and what they were."""
        extracted = self.features_images - self.features_cached_images
        cached = f"({extracted:,} extracted, {self.features_cached_images:,} from the cache)"
        reused = self.records - self.written
        return [
            _stage_line("store", self.store_s, self.store_images, "images", self._built()),
            _stage_line("features", self.features_s, self.features_images, "images", cached),
            _stage_line(
                "probes",
                self.probe_s,
                self.fits,
                "fits",
                f"({self.problems:,} budget x seed cells)",
            ),
            _stage_line(
                "records",
                self.records_s,
                self.records,
                "records",
                f"({self.written:,} written, {reused:,} reused)",
            ),
        ]

    def _built(self) -> str:
        """What building the stores took, when this run built any: `(built 540 images in
        0.52 s, 2 workers: decode 0.21 s, resize 0.05 s, mask 0.12 s, write 0.01 s)`; a step's
        seconds are summed over the workers, so together they may exceed the wall time."""
        b = self.store_build
        if not b:
            return "(opened, none built)" if self.store_images else ""
        head = "built"
        if "images" in b:
            head += f" {int(b['images']):,} images"
        if "seconds" in b:
            head += f" in {b['seconds']:.2f} s"
        if "workers" in b:
            head += f", {int(b['workers'])} worker{'s' if b['workers'] != 1 else ''}"
        steps = [f"{key[:-2]} {b[key]:.2f} s" for key in _BUILD_STEPS if key in b]
        return f"({head}: {', '.join(steps)})" if steps else f"({head})"


# a store build's steps, as `ImageStore.build_stats` names them (hash: the content hash)
_BUILD_STEPS = ("decode_s", "resize_s", "mask_s", "write_s", "hash_s")


def _stage_line(stage: str, seconds: float, count: int, unit: str, detail: str) -> str:
    # no rate for a stage too short to time (it reads 0.00 s): it would be noise, or a
    # division by a rounded zero
    timed = seconds >= 0.005 and count
    rate = f"{count / seconds:,.1f} {unit}/s" if timed else f"– {unit}/s"
    return f"{stage:<9}{seconds:9.2f} s {count:>9,} {unit:<8}{rate:>18}   {detail}".rstrip()


def store_timings(stores: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """A record's store timings: seconds to open (or build) every split's store, its images,
    and each store built in this run's build statistics (`ImageStore.build_stats`: images,
    seconds, images_per_s, workers, decode_s, resize_s, mask_s, write_s)."""
    built = {}
    for name, store in stores.items():
        stats = getattr(store, "build_stats", None)
        if isinstance(stats, Mapping):
            built[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}
    return {
        "store_s": round(seconds, 3),
        "store_images": sum(len(store) for store in stores.values()),
        "store_build": built,
    }


def run_task(
    adapter: Adapter,
    dataset: Dataset,
    pooling: str,
    config: BenchConfig,
    load_s: float,
    times: RunTimes | None = None,
) -> list[tuple[ResultRecord, bool]]:
    """(record, reused) per label budget of one model x task: a segmentation task goes to the
    dense probe on patch tokens (`protocols.segmentation`), a classification task to the run's
    probe."""
    if dataset.card.is_segmentation:
        from ultrabench_eval.protocols.segmentation import run_segmentation_task

        return run_segmentation_task(adapter, dataset, config, load_s, times)
    return _run_task(adapter, dataset, pooling, config, load_s, times)


def _run_task(
    adapter: Adapter,
    dataset: Dataset,
    pooling: str,
    config: BenchConfig,
    load_s: float,
    times: RunTimes | None = None,
) -> list[tuple[ResultRecord, bool]]:
    """(record, reused) per label budget. A record whose inputs are unchanged is reused unless
    `config.overwrite`: an interrupted or repeated run redoes only what is missing. What each
    stage took goes into the records' `timings` and is added to `times`."""
    times = times if times is not None else RunTimes()
    card = dataset.card
    size, interpolation = store_resize(adapter, config.image_size)
    started = time.perf_counter()
    stores = open_task_stores(
        dataset,
        size,
        interpolation,
        config.cache_root,
        workers=config.workers,
        progress=config.progress,
    )
    timings: dict[str, Any] = {
        "load_s": round(load_s, 3),
        **store_timings(stores, time.perf_counter() - started),
        "features_s": {},
    }
    times.add_stores(timings)
    budgets = config.budgets()
    # a probe on patch tokens (attentive) reads them instead of the pooled vector
    on_tokens = reads_tokens(config.probe)
    pooling = TOKENS if on_tokens else pooling
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
    times.add_features(timings)
    labels = {name: dataset.splits[name].labels for name in SPLITS}

    probe = make_probe(config)
    stages = run_stages(adapter, extracted_on, probe_device(probe))
    started = time.perf_counter()
    per_budget, plan = _probe_all(probe, features, labels, card, todo, config.seeds)
    probe_total_s = time.perf_counter() - started
    times.probe_s += probe_total_s
    times.fits += len(plan.subsets)
    times.problems += len(todo) * config.seeds
    timings.update(
        probe_s=round(probe_total_s / len(todo), 3),  # per budget
        probe_total_s=round(probe_total_s, 3),
        probe_fits=len(plan.subsets),  # distinct fits made for every budget of this task
        probe_problems=len(todo) * config.seeds,  # the (budget, seed) cells they answer
    )
    fresh = {}
    for budget, per_fit in zip(todo, per_budget, strict=True):
        started = time.perf_counter()
        fresh[budget] = build_record(
            adapter,
            dataset,
            pooling,
            config.probe,
            config.probe_options,
            budget,
            per_fit,
            image_store=[size, interpolation],
            timings=timings,
            inputs_sha256=digests[budget],
            stages=stages,
            seeds_requested=config.seeds,
        )
        times.records_s += time.perf_counter() - started
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
    seconds, images and whether they came from the cache go into `timings` (`features_s`,
    `features_images`, `features_from_cache`), the device that computed it into
    `extracted_on`. Also: whether every split came from the cache. With `pooling` `TOKENS`
    (a probe on patch tokens), every split's tokens [N, T, D] from the token cache (float16,
    memory-mapped)."""
    arrays, cached = {}, True
    for name in SPLITS:
        if pooling == TOKENS:
            found = cached_tokens(
                adapter,
                card.name,
                name,
                stores[name],
                config.cache_root,
                batch_size=config.batch_size,
            )
            arrays[name] = found.tokens
        else:
            found = cached_features(
                adapter,
                card.name,
                name,
                stores[name],
                config.cache_root,
                batch_size=config.batch_size,
            )
            arrays[name] = found.features[pooling]
        feature_timings(timings, name, found.seconds, len(stores[name]), found.from_cache)
        cached = cached and found.from_cache
        if extracted_on is not None:
            extracted_on.add(found.device or "unknown")
    return arrays, cached


def feature_timings(
    timings: dict[str, Any], name: str, seconds: float, images: int, from_cache: bool
) -> None:
    """Note one feature set (a split, or `test/<view>`) in a record's `timings`."""
    timings.setdefault("features_s", {})[name] = round(seconds, 3)
    timings.setdefault("features_images", {})[name] = images
    timings.setdefault("features_from_cache", {})[name] = from_cache


def make_probe(config: BenchConfig) -> Probe:
    """The bench's probe, on the bench's device unless a probe option names another."""
    return PROBES.get(config.probe)(**{"device": config.device, **config.probe_options})


def probe_device(probe: Probe) -> str:
    """Where a probe fits: its torch device, or the CPU for a non-torch backend."""
    if getattr(probe, "backend", "torch") != "torch":
        return "cpu"
    return str(getattr(probe, "device", "cpu"))


def inputs_digest(
    adapter,
    pooling,
    dataset: Dataset,
    stores,
    config: BenchConfig,
    budget: fewshot.Budget,
    *,
    protocol: tuple[str, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Everything a record's scores depend on: model and features (their cache key: adapter
    code, weights, pipeline code, precision, options), labels, protocol, the package's code.
    `protocol`: (probe, options) when not the run's own (a segmentation task's dense probe);
    `extra`: what else the scores depend on (a segmentation task's label masks)."""
    probe, options = protocol or (config.probe, config.probe_options)
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
        "protocol": [probe, dict(options), budget.label, config.seeds],
        **({"extra": dict(extra)} if extra else {}),
        # a Hugging Face dataset's record names its source: a folder's record is not reused
        **({"source": dataset.source} if dataset.source is not None else {}),
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

    def per_fit(self, budget_index: int, fitted: Sequence[Any]) -> list[SeedResult]:
        """(seed, train size, result) per distinct fit of one budget, named by the first of
        its seeds that uses it: what a record lists (seeds that share a fit share an entry)."""
        seen: set[int] = set()
        out = []
        for seed, fit in enumerate(self.cells[budget_index]):
            if fit not in seen:
                seen.add(fit)
                out.append(SeedResult(seed, len(self.subsets[fit]), fitted[fit]))
        return out


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
) -> tuple[list[list[SeedResult]], FitPlan]:
    """Every (budget, seed) probe in one call, so a batched probe fits them all at once: per
    budget, one result per distinct fit (`FitPlan.per_fit`), and the plan."""
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
    return [plan.per_fit(b, fitted) for b in range(len(budgets))], plan
