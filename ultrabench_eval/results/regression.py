"""Regression check: current result records against a stored baseline.

A baseline is a JSON file with one cell per model x task x protocol: the mean and std of the
test score (x100: macro-F1 for classification, Dice for segmentation; the cell's `metric`,
absent from older baselines, which hold macro-F1 only) and the setup that makes two cells
comparable (seeds, split sizes, image store, probe options). `ubench check` fails (exit 1) when
a cell dropped by more than the tolerance (points of the cell's score, or k baseline std), when
a baseline cell has no record any more, or when a cell's setup differs from the baseline's (the
scores would not be comparable). Cells that got better, or that the baseline does not have, are
reported and do not fail.

A cell's `seeds` are the seeds asked for; `fits` (absent from older baselines: one per score)
how many distinct probe fits they made. A probe that ignores the seed fits once at all labels,
so its std is 0 and `--tolerance-std` allows such a cell no drop: the report says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.results.record import ResultRecord, metric_label

SCHEMA = "ultrabench-eval/baseline/1"
DEFAULT_TOLERANCE = 1.0  # points of the score (x100)
_EPS = 1e-9  # a drop exactly at the tolerance passes, whatever the float rounding


def cell_key(cell: dict[str, Any]) -> tuple[str, str, str]:
    return (cell["model"], cell["task"], cell["protocol"])


def cell_of(record: ResultRecord) -> dict[str, Any]:
    """The baseline's view of a result record."""
    return {
        "model": record.model_name,
        "task": record.task_name,
        "protocol": record.protocol_id,
        "metric": record.scores.metric,
        "mean": record.scores.mean,
        "std": record.scores.std,
        "fits": record.fit_count,
        "per_seed": record.scores.per_seed,
        "setup": {
            "seeds": record.seed_count,
            "split_sizes": record.task.split_sizes,
            "image_store": record.protocol.image_store,
            "probe_options": record.protocol.probe_options,
        },
    }


def make_baseline(records: list[ResultRecord]) -> dict[str, Any]:
    cells = sorted((cell_of(r) for r in records), key=cell_key)
    return {
        "schema": SCHEMA,
        "note": "written by `ubench check --update`; CI's configuration is in .ci/bench-check",
        "cells": cells,
    }


def write_baseline(path: Path, records: list[ResultRecord]) -> dict[str, Any]:
    """Rewrite the baseline from `records` atomically (a reader sees the old or the new one)."""
    if not records:
        raise UserError("no result records to make a baseline from: run `ubench bench` first")
    baseline = make_baseline(records)
    try:
        atomic.write_json(path, baseline)
    except OSError as exc:
        raise UserError(
            f"cannot write baseline {path}: {exc.strerror or exc} (pass a writable --baseline)"
        ) from None
    return baseline


def read_baseline(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"baseline not found: {path} (make one with `ubench check --update --baseline {path}`)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read baseline {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a ubench baseline (schema {SCHEMA})")
    cells = data.get("cells")
    if not isinstance(cells, list) or not cells:
        # a baseline with nothing to compare would pass every run: it cannot be the intent
        raise UserError(
            f"{path}: 'cells' must be a non-empty list of baseline cells, got "
            f"{_shown(cells)} (rewrite it with `ubench check --update --baseline {path}`)"
        )
    for i, cell in enumerate(cells):
        problem = _cell_problem(cell)
        if problem:
            raise UserError(
                f"{path}: cell {i} {problem} (fix it, or rewrite the baseline with "
                "`ubench check --update`)"
            )
    return data


def _cell_problem(cell: Any) -> str:
    """What is wrong with one baseline cell ("" when nothing)."""
    if not isinstance(cell, dict):
        return f"must be an object, got {_shown(cell)}"
    for key in ("model", "task", "protocol"):
        if not isinstance(cell.get(key), str):
            return f"'{key}' must be text, got {_shown(cell.get(key))}"
    for key in ("mean", "std"):
        if not is_finite_number(cell.get(key)):
            # NaN compares False with everything: a NaN mean could never count as a drop
            return f"'{key}' must be a finite number, got {_shown(cell.get(key))}"
    if cell.get("metric") is not None and not isinstance(cell["metric"], str):
        return f"'metric' must be text, got {_shown(cell['metric'])}"
    if cell.get("setup") is not None and not isinstance(cell["setup"], dict):
        return f"'setup' must be an object, got {_shown(cell['setup'])}"
    return ""


def is_finite_number(value: Any) -> bool:
    """A real, finite number (JSON `true` is not a number; NaN and infinity are not finite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: Any) -> str:
    return "nothing" if value is None else json.dumps(value)[:40]


@dataclass(frozen=True)
class CellCheck:
    model: str
    task: str
    protocol: str
    baseline: float
    baseline_std: float
    current: float | None
    allowed_drop: float
    status: str  # "ok", "improved", "dropped", "missing", "setup differs"
    detail: str = ""
    metric: str | None = "macro_f1"  # what the scores are (`Scores.metric`)

    @property
    def change(self) -> float | None:
        return None if self.current is None else self.current - self.baseline

    @property
    def failed(self) -> bool:
        return self.status in ("dropped", "missing", "setup differs")


def check(
    baseline: dict[str, Any],
    records: list[ResultRecord],
    *,
    tolerance: float | None = None,
    tolerance_std: float | None = None,
) -> tuple[list[CellCheck], list[tuple[str, str, str]]]:
    """(one check per baseline cell, keys of current cells the baseline lacks). The allowed
    drop is `tolerance` points, or `tolerance_std` times the baseline cell's std."""
    if tolerance is not None and tolerance_std is not None:
        raise UserError("give --tolerance or --tolerance-std, not both")
    if tolerance_std is None and tolerance is None:
        tolerance = DEFAULT_TOLERANCE
    for flag, value in (("--tolerance", tolerance), ("--tolerance-std", tolerance_std)):
        # NaN compares False with everything: a NaN tolerance could never fail the check
        if value is not None and not (is_finite_number(value) and value >= 0):
            raise UserError(f"{flag} must be a finite number at least 0, got {value}")
    current = {cell_key(c): c for c in (cell_of(r) for r in records)}
    out = []
    for cell in baseline["cells"]:
        key = cell_key(cell)
        allowed = tolerance if tolerance is not None else tolerance_std * float(cell["std"])
        now = current.get(key)
        # an older baseline names no metric: the record does, else it is macro-F1
        metric = cell.get("metric") or (now or {}).get("metric") or "macro_f1"
        if now is None:
            out.append(
                CellCheck(*key, cell["mean"], cell["std"], None, allowed, "missing", "", metric)
            )
            continue
        detail = _setup_difference(cell.get("setup"), now["setup"])
        drop = float(cell["mean"]) - float(now["mean"])
        if detail:
            status = "setup differs"
        elif drop > allowed + _EPS:
            status = "dropped"
            if tolerance is None and single_fit(cell):
                detail = "one fit: no std, so --tolerance-std allows no drop; use --tolerance"
            elif tolerance is None and float(cell["std"]) == 0.0:
                detail = "baseline std 0, so --tolerance-std allows no drop; use --tolerance"
        elif drop < -(allowed + _EPS):
            status = "improved"
        else:
            status = "ok"
        out.append(
            CellCheck(*key, cell["mean"], cell["std"], now["mean"], allowed, status, detail, metric)
        )
    known = {cell_key(c) for c in baseline["cells"]}
    return out, sorted(set(current) - known)


def single_fit(cell: dict[str, Any]) -> bool:
    """Whether one probe fit is behind a baseline cell (an older cell: one per-seed score)."""
    fits = cell.get("fits")
    if is_finite_number(fits):
        return fits == 1
    per_seed = cell.get("per_seed")
    return isinstance(per_seed, list) and len(per_seed) == 1


def describe_tolerance(
    tolerance: float | None,
    tolerance_std: float | None,
    checks: list[CellCheck] | None = None,
) -> str:
    """The check's rule in words: `allowed drop 1.00 points of Dice`, naming the score of the
    checked cells (`metric_name`; macro-F1 without `checks`)."""
    if tolerance_std is not None:
        return f"allowed drop {tolerance_std:g} x the baseline std"
    points = DEFAULT_TOLERANCE if tolerance is None else tolerance
    return f"allowed drop {points:.2f} points of {metric_name(checks or [])}"


def metric_name(checks: list[CellCheck]) -> str:
    """The score the cells hold: `macro-F1`, `Dice`, or `macro-F1 or Dice` for a baseline of
    both kinds of task (macro-F1 when there is no cell)."""
    names = sorted({_metric_text(c.metric) for c in checks}, key=str.lower)
    return " or ".join(names) or _metric_text(None)


def _metric_text(metric: str | None) -> str:
    """A `Scores.metric` as people write it (`dice` -> `Dice`); a record without one is an
    older classification record: macro-F1."""
    return metric_label(metric)


def _setup_difference(then: dict[str, Any] | None, now: dict[str, Any]) -> str:
    if not then:
        return ""
    changed = [k for k in sorted(then) if then[k] != now.get(k)]
    return "; ".join(f"{k}: {then[k]} then, {now.get(k)} now" for k in changed)


def report(checks: list[CellCheck], new: list[tuple[str, str, str]], how: str) -> str:
    """The check's table, failures first, and a one-line summary; a metric column when the
    baseline holds scores of both kinds (macro-F1 and Dice)."""
    order = {"dropped": 0, "missing": 1, "setup differs": 2, "improved": 3, "ok": 4}
    mixed = len({_metric_text(c.metric) for c in checks}) > 1
    body = []
    for c in sorted(checks, key=lambda c: (order[c.status], c.model, c.task, c.protocol)):
        body.append(
            [
                "FAIL" if c.failed else "ok",
                c.model,
                c.task,
                c.protocol,
                *([_metric_text(c.metric)] if mixed else []),
                f"{c.baseline:.2f}",
                "–" if c.current is None else f"{c.current:.2f}",
                "–" if c.change is None else f"{c.change:+.2f}",
                f"{c.allowed_drop:.2f}",
                c.status + (f" ({c.detail})" if c.detail else ""),
            ]
        )
    headers = [
        "",
        "model",
        "task",
        "protocol",
        *(["metric"] if mixed else []),
        "baseline",
        "now",
        "change",
        "allowed drop",
        "status",
    ]
    grid = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    failed = [c for c in checks if c.failed]
    counts = {s: sum(c.status == s for c in checks) for s in order}
    summary = (
        f"{len(checks)} baseline cells ({how}): "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (f"; {len(new)} cells not in the baseline" if new else "")
        + (" -> FAIL" if failed else " -> pass")
    )
    return f"{grid}\n\n{summary}\n"
