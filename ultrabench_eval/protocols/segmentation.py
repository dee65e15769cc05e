"""One model x segmentation task: image stores and label masks -> patch tokens (cached) -> the
dense probe over every (label budget, seed) at once -> one result record per budget.

The probe is `dense` whatever `--probe` names for the classification tasks of the same run
(`--probe dense --probe-option ...` sets its options). Label budgets take a fraction (or K)
of the training images, drawn per seed; Dice and IoU are measured at the task's evaluation
resolution (the card's `eval_size`, 224 px by default), inside the scan mask.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import Dataset
from ultrabench_eval.data.image_store import PIL_FILTERS, resize_gray
from ultrabench_eval.data.label_store import LabelStore, open_label_store
from ultrabench_eval.data.task_card import SPLITS
from ultrabench_eval.features.extract_tokens import cached_tokens
from ultrabench_eval.features.stores import open_task_stores, store_resize
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.probes import fewshot
from ultrabench_eval.probes.dense import SegmentationProbeResult
from ultrabench_eval.probes.segmentation_metrics import segmentation_scores
from ultrabench_eval.protocols.bench import (
    TOKENS,
    FitPlan,
    RunTimes,
    feature_timings,
    inputs_digest,
    plan_fits,
    store_timings,
)
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.protocols.reuse import Expected, reusable_records
from ultrabench_eval.results.build import build_record, run_stages
from ultrabench_eval.results.overlays import (
    Overlay,
    overlay_path,
    sample_indices,
    write_overlay,
)
from ultrabench_eval.results.record import ResultRecord, protocol_id

DENSE = "dense"


def dense_probe_options(config: BenchConfig) -> dict[str, Any]:
    """The dense probe's options: those given with `--probe dense`, else its defaults."""
    return dict(config.probe_options) if config.probe == DENSE else {}


class _Task:
    """One model x segmentation task: its image and label stores (opened on creation), what
    its records' inputs digest holds, its tokens and its dense probe fits."""

    def __init__(self, adapter: Adapter, dataset: Dataset, config: BenchConfig, load_s: float):
        self.adapter, self.dataset, self.config = adapter, dataset, config
        self.card = card = dataset.card
        self.size, self.interpolation = store_resize(adapter, config.image_size)
        started = time.perf_counter()
        self.stores = open_task_stores(
            dataset,
            self.size,
            self.interpolation,
            config.cache_root,
            workers=config.workers,
            progress=config.progress,
        )
        self.masks = {
            name: open_label_store(split, card, config.cache_root, progress=config.progress)
            for name, split in dataset.splits.items()
        }
        self.timings: dict[str, Any] = {
            "load_s": round(load_s, 3),
            **store_timings(self.stores, time.perf_counter() - started),
            "features_s": {},
        }
        _check_foreground(card.name, self.masks)
        self.options = dense_probe_options(config)
        self.tokens: dict[str, np.ndarray] = {}
        self.grid: tuple[int, int] = (0, 0)
        self.extracted_on: set[str] = set()

    def digest(self, budget: fewshot.Budget) -> str:
        """The inputs digest of a clean record: the bench's, with the dense probe and the
        label masks (their content and evaluation size)."""
        extra = {
            "label_masks": {name: store.content_hash for name, store in self.masks.items()},
            "eval_size": self.card.evaluation_size,
        }
        return inputs_digest(
            self.adapter,
            TOKENS,
            self.dataset,
            self.stores,
            self.config,
            budget,
            protocol=(DENSE, self.options),
            extra=extra,
        )

    def read_tokens(self, views: list[View]) -> None:
        """Every split's clean tokens and the test tokens of each view, from the token cache
        or extracted; what each took goes into the records' timings."""
        config = self.config
        for name, view in [*((s, None) for s in SPLITS), *(("test", v) for v in views)]:
            found = cached_tokens(
                self.adapter,
                self.card.name,
                name,
                self.stores[name],
                config.cache_root,
                batch_size=config.batch_size,
                view=view,
            )
            key = name if view is None else f"test/{view.label}"
            images = len(self.stores[name])
            feature_timings(self.timings, key, found.seconds, images, found.from_cache)
            self.tokens[key], self.grid = found.tokens, found.grid
            self.extracted_on.add(found.device or "unknown")
        self.timings["features_cached"] = all(self.timings["features_from_cache"].values())

    def fit(self, budgets: list[fewshot.Budget]) -> tuple[Any, FitPlan, list[Any], float]:
        """The dense probe over every (budget, seed) at once: (probe, plan, results, seconds)."""
        started = time.perf_counter()
        config = self.config
        probe = PROBES.get(DENSE)(**{"device": config.device, **self.options})
        unlabelled = np.zeros(len(self.stores["train"]), np.int64)  # budgets draw images
        plan = plan_fits(budgets, config.seeds, unlabelled, 1, probe.uses_seed)
        fitted = probe.fit_predict_subsets(
            self.tokens["train"],
            *_masks(self.masks["train"]),
            plan.subsets,
            self.tokens["validation"],
            *_masks(self.masks["validation"]),
            self.tokens["test"],
            *_masks(self.masks["test"]),
            grid=self.grid,
            n_classes=self.card.num_classes,
            seeds=plan.seeds,
        )
        return probe, plan, fitted, time.perf_counter() - started

    def record(
        self,
        budget: fewshot.Budget,
        per_fit: list[Any],
        digest: str,
        probe: Any,
        view: View | None = None,
    ) -> ResultRecord:
        stages = run_stages(self.adapter, self.extracted_on, str(getattr(probe, "device", "cpu")))
        return build_record(
            self.adapter,
            self.dataset,
            TOKENS,
            DENSE,
            self.options,
            budget,
            per_fit,
            image_store=[self.size, self.interpolation],
            timings=self.timings,
            inputs_sha256=digest,
            view=view,
            stages=stages,
            seeds_requested=self.config.seeds,
        )

    def note_probe(self, seconds: float, plan: FitPlan, budgets: int) -> None:
        self.timings.update(
            probe_s=round(seconds / budgets, 3),  # per budget
            probe_total_s=round(seconds, 3),
            probe_fits=len(plan.subsets),
            probe_problems=budgets * self.config.seeds,
            eval_size=self.card.evaluation_size,
        )


def run_segmentation_task(
    adapter: Adapter,
    dataset: Dataset,
    config: BenchConfig,
    load_s: float,
    times: RunTimes | None = None,
) -> list[tuple[ResultRecord, bool]]:
    """(record, reused) per label budget, as `bench._run_task` does for classification."""
    times = times if times is not None else RunTimes()
    task = _Task(adapter, dataset, config, load_s)
    times.add_stores(task.timings)
    budgets = config.budgets()
    ids = {b: protocol_id(DENSE, b, options=task.options) for b in budgets}
    expected = {b: Expected(ids[b], task.digest(b)) for b in budgets}
    reused = reusable_records(config, adapter.name, dataset.card.name, expected)
    todo = [b for b in budgets if b not in reused]
    if not todo:
        return [(reused[b], True) for b in budgets]

    task.read_tokens([])
    times.add_features(task.timings)
    probe, plan, fitted, seconds = task.fit(todo)
    times.probe_s += seconds
    times.fits += len(plan.subsets)
    times.problems += len(todo) * config.seeds
    task.note_probe(seconds, plan, len(todo))
    fresh = {}
    for index, budget in enumerate(todo):
        _save_overlay(task, ids[budget], probe, plan.cells[index][0])
        started = time.perf_counter()
        per_fit = plan.per_fit(index, fitted)
        fresh[budget] = task.record(budget, per_fit, expected[budget].inputs_sha256, probe)
        times.records_s += time.perf_counter() - started
    return [(reused[b], True) if b in reused else (fresh[b], False) for b in budgets]


def robust_segmentation_task(
    adapter: Adapter,
    dataset: Dataset,
    config: BenchConfig,
    views: list[View],
    load_s: float,
) -> list[tuple[ResultRecord, bool]]:
    """The robustness protocol on a segmentation task: the dense probe fitted on clean tokens
    (every training image, chosen on clean validation) and scored on the clean test tokens and
    on those of every corrupted view. The corruption changes the test images only: every view is
    scored against the same label masks and scan masks. (record, reused), clean first."""
    from ultrabench_eval.protocols.robust import FULL, view_digest

    task = _Task(adapter, dataset, config, load_s)
    clean = task.digest(FULL)
    expected = {"clean": Expected(protocol_id(DENSE, FULL, options=task.options), clean)}
    for view in views:
        expected[view.label] = Expected(
            protocol_id(DENSE, FULL, view.label, task.options), view_digest(clean, view)
        )
    existing = reusable_records(config, adapter.name, dataset.card.name, expected)
    if all(label in existing for label in expected):
        return [(existing[label], True) for label in expected]

    task.read_tokens(views)
    probe, plan, fitted, seconds = task.fit([FULL])
    started = time.perf_counter()
    per_view = {"clean": fitted}
    test_masks = _masks(task.masks["test"])
    for view in views:
        counts = probe.score(None, task.tokens[f"test/{view.label}"], *test_masks, task.grid)
        per_view[view.label] = [_rescored(r, c) for r, c in zip(fitted, counts, strict=True)]
    task.note_probe(seconds + time.perf_counter() - started, plan, 1)
    out = []
    for label, view in zip(expected, [None, *views], strict=True):
        if label in existing:
            out.append((existing[label], True))
            continue
        per_fit = plan.per_fit(0, per_view[label])
        record = task.record(FULL, per_fit, expected[label].inputs_sha256, probe, view)
        out.append((record, False))
    return out


def _check_foreground(task: str, masks: dict[str, LabelStore]) -> None:
    """Dice is undefined on a split with no foreground pixel inside its scan masks: say so
    before any work rather than write a record without a score."""
    for name in ("train", "validation", "test"):
        if sum(masks[name].meta["pixels_per_class"][1:]) == 0:
            raise UserError(
                f"task {task}: the {name} split's label masks have no foreground pixel inside "
                "the scan masks, so Dice is undefined (check the masks and the card's "
                "mask_values)"
            )
    # as for classification: a class never seen in training cannot be learnt, and one absent
    # from test has no score (see `ubench tasks check`)
    for name in ("train", "test"):
        meta = masks[name].meta
        absent = [
            c for c, n in zip(meta["classes"], meta["pixels_per_class"], strict=True) if not n
        ]
        if absent:
            raise UserError(
                f"task {task}: the {name} split's label masks have no pixel of class(es) "
                f"{', '.join(absent)} inside the scan masks (see `ubench tasks check`)"
            )


def _masks(store: LabelStore) -> tuple[np.ndarray, np.ndarray]:
    return store.labels, store.valid


def _save_overlay(task: _Task, protocol: str, probe: Any, fit: int) -> None:
    """A few test images with their true masks and the masks fit `fit` predicts, beside the
    record (`results.overlays`), for the report's overlay figure."""
    images, masks, card = task.stores["test"], task.masks["test"], task.card
    picked = sample_indices(masks.labels, masks.valid)
    side = masks.size
    shown = np.stack(
        [resize_gray(np.asarray(images.images[i]), side, PIL_FILTERS["bilinear"]) for i in picked]
    )
    predicted = probe.predict_masks(fit, np.asarray(task.tokens["test"][picked]), task.grid)
    overlay = Overlay(
        images=shown,
        truth=np.asarray(masks.labels[picked]),
        prediction=predicted,
        valid=np.asarray(masks.valid[picked]),
        ids=[images.ids[i] for i in picked],
        classes=list(card.classes),
    )
    path = overlay_path(task.config.results_root, task.adapter.name, card.name, protocol)
    write_overlay(path, overlay)


def _rescored(result: SegmentationProbeResult, counts: np.ndarray) -> SegmentationProbeResult:
    """A clean fit's result with its test counts (and scores) on another test set."""
    scores = segmentation_scores(counts)
    return dataclasses.replace(
        result,
        test_counts=counts,
        test_dice=float(scores.dice),
        test_miou=float(scores.miou),
        test_dice_per_class=[float(v) for v in scores.dice_per_class],
    )
