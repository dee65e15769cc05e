"""Segmentation samples beside a record: a few test images with their true and predicted masks,
for the report's overlay figure (the records keep counts, not masks).

`<record path without .json>.overlay.npz` holds, at the task's evaluation size: `images`
uint8 [n, E, E], `truth` and `prediction` uint8 [n, E, E] (class indices), `valid` uint8
[n, E, E] (the scan mask), `ids` (the images' paths) and `classes`. The images shown are the
test images with the largest true foreground (ties: the first), so the figure shows lesions,
not empty scans; the prediction is the first fit's of the record.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ultrabench_eval.core import atomic
from ultrabench_eval.results.record import record_path

SAMPLES = 4


@dataclass(frozen=True)
class Overlay:
    images: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray
    valid: np.ndarray
    ids: list[str]
    classes: list[str]


def overlay_path(results_root: Path, model: str, task: str, protocol: str) -> Path:
    path = record_path(results_root, model, task, protocol)
    return path.with_name(path.stem + ".overlay.npz")


def sample_indices(truth: np.ndarray, valid: np.ndarray, count: int = SAMPLES) -> np.ndarray:
    """The `count` test images with the most foreground pixels inside the scan, in order."""
    foreground = ((truth > 0) & (valid > 0)).reshape(len(truth), -1).sum(axis=1)
    order = np.argsort(-foreground, kind="stable")
    return np.sort(order[: min(count, len(truth))])


def write_overlay(path: Path, overlay: Overlay) -> None:
    """The samples as one compressed npz, written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=overlay.images.astype(np.uint8),
        truth=overlay.truth.astype(np.uint8),
        prediction=overlay.prediction.astype(np.uint8),
        valid=overlay.valid.astype(np.uint8),
        ids=np.array(overlay.ids, dtype=str),
        classes=np.array(overlay.classes, dtype=str),
    )
    atomic.write_bytes(path, buffer.getvalue())


def read_overlay(path: Path) -> Overlay | None:
    """The samples of a record, or None when there are none (or the file is unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return Overlay(
                images=data["images"],
                truth=data["truth"],
                prediction=data["prediction"],
                valid=data["valid"],
                ids=[str(v) for v in data["ids"]],
                classes=[str(v) for v in data["classes"]],
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error):
        return None  # missing, truncated or damaged: no samples to show
