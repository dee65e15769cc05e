"""Where every result record is made: from one model x task x protocol's per-seed probe results.
The bench writes its clean label budgets with it, the robustness protocol each corrupted view
(the view is an argument, nothing is patched afterwards)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import Dataset
from ultrabench_eval.features.cache_identity import (
    extraction_options,
    feature_fingerprint,
    package_digest,
    precision_for,
)
from ultrabench_eval.features.extract import versions
from ultrabench_eval.features.feature_cache import ids_hash
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.results import stats
from ultrabench_eval.results.record import (
    SCHEMA,
    CorruptionPart,
    ModelPart,
    ProtocolPart,
    ResultRecord,
    Scores,
    TaskPart,
    TestPart,
    git_revision,
    protocol_id,
)


class SeedResult(NamedTuple):
    """One distinct probe fit: the (first) seed that made it, its training size, its result."""

    seed: int
    train_size: int
    result: Any  # a ProbeResult, or a dense probe's SegmentationProbeResult


def build_record(
    adapter: Adapter,
    dataset: Dataset,
    pooling: str,
    probe: str,
    probe_options: dict[str, Any],
    budget: Budget,
    per_seed: list[SeedResult],
    *,
    image_store: list[Any],
    timings: dict[str, Any],
    inputs_sha256: str,
    view: View | None = None,
    stages: dict[str, Any] | None = None,
    seeds_requested: int | None = None,
) -> ResultRecord:
    """The record of one model x task x label budget (x corrupted view, when `view` is given),
    as its file reads back (JSON types: lists, plain strings and numbers). `per_seed`: one
    entry per distinct probe fit (seeds that share a fit share an entry, see
    `protocols.bench.FitPlan`), of the `seeds_requested` seeds asked (default: one per
    entry). `stages`: where each stage ran (`run_stages`)."""
    if not per_seed:
        raise ValueError("a record needs at least one probe fit")
    started = time.perf_counter()
    card = dataset.card
    test = dataset.splits["test"]
    if is_segmentation_result(per_seed[0].result):
        scores, test_part = _segmentation_scores(card.classes, test.ids, per_seed)
    else:
        scores, test_part = _classification_scores(card.num_classes, test, per_seed)
    # this record's own cost (its bootstrap interval, mostly), beside the stages it shares
    timings = {**timings, "record_s": round(time.perf_counter() - started, 3)}
    record = ResultRecord(
        schema=SCHEMA,
        inputs_sha256=inputs_sha256,
        model=ModelPart(
            name=adapter.name,
            fingerprint=adapter.fingerprint(),
            weights=adapter.weights_id(),
            pooling=pooling,
            input_spec=adapter.input_spec.as_dict(),
            info=asdict(adapter.info),
        ),
        task=TaskPart(
            name=card.name,
            dataset=card.dataset,
            classes=list(card.classes),
            split_sizes={name: len(split) for name, split in dataset.splits.items()},
            allow_overlap=None if dataset.overlap is None else list(dataset.overlap),
            source=dataset.source,
        ),
        protocol=ProtocolPart(
            id=protocol_id(probe, budget, view.label if view else "clean", probe_options),
            probe=probe,
            probe_options=probe_options,
            budget=budget.label,
            fraction=budget.fraction,
            shots=budget.shots,
            view=view.label if view else "clean",
            seeds=[s.seed for s in per_seed],
            image_store=image_store,
            corruption=None if view is None else _corruption(view),
            seeds_requested=len(per_seed) if seeds_requested is None else seeds_requested,
        ),
        scores=scores,
        test=test_part,
        hyperparameters_per_seed=[s.result.params for s in per_seed],
        train_size_per_seed=[s.train_size for s in per_seed],
        timings=timings,
        versions=versions(),
        git_revision=git_revision(),
        code_sha256=package_digest(),
        stages=stages,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    # probe settings and versions come as tuples and str subclasses: normalised once here, so
    # the record a run returns equals the one read from its file
    return ResultRecord.from_dict(json.loads(json.dumps(record.to_dict())))


def is_segmentation_result(result: Any) -> bool:
    """A dense probe's result (per-image confusion counts) rather than a classifier's."""
    return hasattr(result, "test_counts")


def _spread(values: np.ndarray) -> float:
    # sample standard deviation over the fits (ddof=1); 0 for one fit, which the tables show
    # as one fit, not as a spread
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _classification_scores(
    n_classes: int, test: Any, per_seed: list[SeedResult]
) -> tuple[Scores, TestPart]:
    scores = np.array([s.result.test_macro_f1 for s in per_seed], dtype=np.float64)
    predictions = np.stack([s.result.test_pred for s in per_seed])
    interval = stats.bootstrap_ci(test.labels, predictions, n_classes, seed=0)
    return (
        Scores(
            metric="macro_f1",
            per_seed=[round(float(s), 6) for s in scores],
            mean=float(scores.mean()),
            std=_spread(scores),
            fits=len(per_seed),
            val_per_seed=[round(float(s.result.val_macro_f1), 6) for s in per_seed],
            # bootstrap over test images of the seed-mean score (ultrabench_eval.results.stats)
            ci95=[round(interval.low, 4), round(interval.high, 4)],
            bootstrap_draws=interval.draws,
        ),
        TestPart(
            ids_sha256=ids_hash(test.ids),
            labels=test.labels.tolist(),
            predictions_per_seed=predictions.tolist(),
        ),
    )


def _segmentation_scores(
    classes: tuple[str, ...], test_ids: list[str], per_seed: list[SeedResult]
) -> tuple[Scores, TestPart]:
    """Dice (the headline: mean over foreground classes) and mean IoU, each mean and std over
    the fits, Dice per class, and the per-image counts the paired statistics need."""
    dice = np.array([s.result.test_dice for s in per_seed], dtype=np.float64)
    miou = np.array([s.result.test_miou for s in per_seed], dtype=np.float64)
    per_class = np.array([s.result.test_dice_per_class for s in per_seed], dtype=np.float64)
    counts = np.stack([np.asarray(s.result.test_counts, dtype=np.int64) for s in per_seed])
    interval = stats.dice_bootstrap_ci(counts, seed=0)
    with np.errstate(all="ignore"):
        class_means = [float(np.nanmean(c)) if not np.isnan(c).all() else None for c in per_class.T]
    return (
        Scores(
            metric="dice",
            per_seed=[round(float(s), 6) for s in dice],
            mean=float(dice.mean()),
            std=_spread(dice),
            fits=len(per_seed),
            val_per_seed=[round(float(s.result.val_dice), 6) for s in per_seed],
            ci95=[round(interval.low, 4), round(interval.high, 4)],
            bootstrap_draws=interval.draws,
            secondary={
                "miou": {
                    "mean": float(miou.mean()),
                    "std": _spread(miou),
                    "per_seed": [round(float(v), 6) for v in miou],
                    "val_per_seed": [round(float(s.result.val_miou), 6) for s in per_seed],
                },
                "dice_per_class": {
                    name: round(value, 6)
                    for name, value in zip(classes[1:], class_means, strict=True)
                    if value is not None
                },
            },
        ),
        TestPart(
            ids_sha256=ids_hash(test_ids),
            labels=None,
            predictions_per_seed=None,
            counts_per_seed=counts.tolist(),
        ),
    )


def run_stages(adapter: Adapter, extracted_on: set[str], probe_device: str) -> dict[str, Any]:
    """Where each stage of a record ran: the device(s) that computed its features (a cached
    file's own), at which precision and with which speed-ups, and the probe's device."""
    return {
        "extraction": {
            "device": ", ".join(sorted(extracted_on)) or None,
            "precision": precision_for(adapter.device),
            **extraction_options(adapter),
            "features_fingerprint": feature_fingerprint(adapter),
        },
        "probe": {"device": probe_device},
    }


def _corruption(view: View) -> CorruptionPart:
    return CorruptionPart(
        view_key=view.name,
        corruption=view.corruption,
        severity=view.severity,
        seed=view.seed,
        parameters=view.parameters(),
    )
