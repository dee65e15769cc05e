"""Synthetic result records for the report tests (leaderboard, published, regression, plots,
report): typed records with the fields the readers use, known scores, and optional test
predictions from which the scores are computed as the bench computes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from ultrabench_eval.features.feature_cache import ids_hash
from ultrabench_eval.results import record as results
from ultrabench_eval.results.record import ResultRecord


def make_record(
    model: str,
    task: str,
    mean: float | None = None,
    std: float = 0.5,
    *,
    probe: str = "linear",
    fraction: float | None = 1.0,
    shots: int | None = None,
    view: str = "clean",
    corruption: str | None = None,
    severity: int | None = None,
    labels: list[int] | None = None,
    predictions: list[list[int]] | None = None,
    classes: tuple[str, ...] = ("a", "b", "c"),
    ci95: tuple[float, float] | None = None,
    seeds: int = 2,
    split_sizes: dict[str, int] | None = None,
) -> ResultRecord:
    """A record; with `labels` and `predictions` (one list per seed) the scores are their
    macro-F1 (x100) mean and std, else `mean` and `std` as given."""
    if shots is not None:
        budget, fraction = f"{shots}-shot", None
    else:
        budget = f"{fraction * 100:g}%"
    pid = probe if (shots is None and fraction == 1.0) else f"{probe}@{budget}"
    if view != "clean":
        pid = f"{pid}/{view}"
    test: dict[str, Any] = {}
    per_seed = [mean] * seeds
    if predictions is not None:
        per_seed = [
            100.0 * f1_score(labels, p, average="macro", labels=range(len(classes)))
            for p in predictions
        ]
        mean = float(np.mean(per_seed))
        std = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
        test = {
            "ids_sha256": ids_hash([f"img{i}" for i in range(len(labels))]),
            "labels": list(labels),
            "predictions_per_seed": [list(p) for p in predictions],
        }
    protocol: dict[str, Any] = {
        "id": pid,
        "probe": probe,
        "probe_options": {},
        "budget": budget,
        "fraction": fraction,
        "shots": shots,
        "view": view,
        "seeds": list(range(len(per_seed))),
        "image_store": [32, "bicubic"],
    }
    if corruption is not None:
        protocol["corruption"], protocol["severity"] = corruption, severity
    return ResultRecord.from_dict(
        {
            "schema": results.SCHEMA,
            "model": {"name": model, "fingerprint": f"{model}-fp", "pooling": "raw"},
            "task": {
                "name": task,
                "dataset": f"{task}_v1",
                "classes": list(classes),
                "split_sizes": split_sizes or {"train": 30, "validation": 10, "test": 20},
            },
            "protocol": protocol,
            "scores": {
                "metric": "macro_f1",
                "per_seed": per_seed,
                "mean": mean,
                "std": std,
                "ci95": list(ci95) if ci95 else [mean - 5.0, mean + 5.0],
            },
            "test": test,
            "versions": {"ultrabench_eval": "0.1.0"},
            "created": "2026-01-01T00:00:00+00:00",
        }
    )


def write_records(root: Path, records: list[ResultRecord]) -> Path:
    for record in records:
        results.write_record(root, record)
    return root


def as_segmentation(record: ResultRecord, miou: float | None = None) -> ResultRecord:
    """`record` as the dense probe writes a segmentation record: scored by Dice, with mIoU
    (`miou`, default 20 points under the Dice) beside it, the background a class."""
    secondary = {
        "miou": {"mean": record.scores.mean - 20.0 if miou is None else miou, "std": 1.0},
        "dice_per_class": {"lesion": record.scores.mean},
    }
    scores = dataclasses.replace(record.scores, metric="dice", secondary=secondary)
    task = dataclasses.replace(record.task, classes=["background", "lesion"])
    return dataclasses.replace(record, scores=scores, task=task)
