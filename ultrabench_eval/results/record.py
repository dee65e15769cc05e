"""Result records: one JSON file per model x task x protocol."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.features.feature_cache import safe_name

SCHEMA = "ultrabench-eval/result/1"


def protocol_id(probe: str, budget: Any, view: str = "clean") -> str:
    """`us-jepa-2026`, `linear@10%`, `knn@5-shot`, `linear/gaussian-noise-s3-seed0`: a record's
    protocol (probe, label budget unless all labels, view unless clean)."""
    out = probe if budget.is_full else f"{probe}@{budget.label}"
    return out if view == "clean" else f"{out}/{view}"


def record_path(results_root: Path, model: str, task: str, protocol: str) -> Path:
    return Path(results_root) / safe_name(model) / safe_name(task) / f"{safe_name(protocol)}.json"


def write_record(results_root: Path, record: dict[str, Any]) -> Path:
    path = record_path(
        results_root, record["model"]["name"], record["task"]["name"], record["protocol"]["id"]
    )
    atomic.write_json(path, record)
    return path


def read_records(results_root: Path) -> list[dict[str, Any]]:
    """Every result record below `results_root` (other JSON files are skipped)."""
    root = Path(results_root)
    if not root.is_dir():
        raise UserError(f"results folder not found: {root} (run `ubench bench` or pass --results)")
    records = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read result record {path}: {exc}") from None
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            records.append(data)
    return records


@functools.cache
def git_revision() -> str | None:
    """The checkout's commit when the package runs from a git clone (asked once)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
