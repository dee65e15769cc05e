"""Shared fixtures: every test gets its own data, cache and results folders."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.task_card import TaskCard

# `datasets` and `huggingface_hub` read their cache folders once, at import: set before any test
# imports them, and removed when the session ends.
_HF_HOME = Path(tempfile.mkdtemp(prefix="ubench-test-hf-"))
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ.pop("HF_DATASETS_CACHE", None)
os.environ.pop("HF_HUB_OFFLINE", None)


@pytest.fixture(scope="session", autouse=True)
def _hf_home_removed():
    yield
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache, data or results."""
    base = tmp_path_factory.mktemp("ubench")
    monkeypatch.setenv("UBENCH_DATA", str(base / "data"))
    monkeypatch.setenv("UBENCH_CACHE", str(base / "cache"))
    monkeypatch.setenv("UBENCH_RESULTS", str(base / "results"))
    monkeypatch.delenv("UBENCH_TASKS", raising=False)


@pytest.fixture
def restored_tasks(monkeypatch):
    """TASKS as it was before the test, whatever cards the test registers."""
    TASKS.names()
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    return TASKS


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_dataset(
    root: Path,
    name: str = "toy",
    classes: tuple[str, ...] = ("a", "b"),
    counts: dict[str, int] | None = None,
    size: tuple[int, int] = (40, 48),
    with_masks: bool = True,
    seed: int = 0,
) -> TaskCard:
    """A small UltraBench-format folder: a bright disc (class-dependent brightness) inside a
    sector-shaped field of view on a black background."""
    counts = counts or {"train": 8, "validation": 4, "test": 6}
    rng = np.random.default_rng(seed)
    folder = root / f"{name}_v1"
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    fov = (np.hypot(yy + 10, xx - w / 2) < h + 5) & (np.abs(xx - w / 2) < (yy + 10) * 0.8)
    for split, count in counts.items():
        records = []
        for i in range(count):
            label = i % len(classes)
            image = rng.integers(20, 120, size=(h, w)).astype(np.uint8)
            disc = np.hypot(yy - h / 2, xx - w / 2) < 6
            image[disc] = 140 + 40 * label
            image[~fov] = 0
            rel = f"images/{split}_{i:03d}.png"
            write_png(folder / rel, image)
            record = {"image": rel, "label": label, "patient": f"p{split}{i // 2}"}
            if with_masks:
                mask_rel = f"masks/scan/{split}_{i:03d}.png"
                write_png(folder / mask_rel, fov.astype(np.uint8))
                record["scan_mask"] = mask_rel
            records.append(record)
        (folder / f"{split}.json").write_text(json.dumps(records, indent=2))
    return TaskCard(
        name=name,
        dataset=f"{name}_v1",
        classes=classes,
        group_field="patient",
        split_sizes=dict(counts),
    )


def card_folder(folder, name, dataset, monkeypatch=None):
    """A task-card folder holding one card; with monkeypatch, made the UBENCH_TASKS folder."""
    folder.mkdir()
    (folder / f"{name}.yaml").write_text(f"name: {name}\ndataset: {dataset}\nclasses: [a, b]\n")
    if monkeypatch is not None:
        monkeypatch.setenv("UBENCH_TASKS", str(folder))
        monkeypatch.setattr(TASKS, "_populated", False)  # read the cards again
    return folder
