"""What a hostile case is, and small builders of the folders the cases break."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


@dataclass(frozen=True)
class Workspace:
    """The folders of one case: the runner points UBENCH_DATA/CACHE/RESULTS/TASKS at them."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def cards(self) -> Path:
        return self.root / "cards"


@dataclass(frozen=True)
class Case:
    """`prepare` breaks something in the workspace and returns the `ubench` arguments to run.
    The run must exit 2 with one stderr line matching `expect` (a regular expression)."""

    name: str
    prepare: Callable[[Workspace], list[str]]
    expect: str
    # results written before the run may stay; a case that expects none written says so
    no_results: bool = True
    env: dict[str, str] = field(default_factory=dict)


def write_task(
    ws: Workspace,
    name: str = "toy",
    classes: tuple[str, ...] = ("a", "b"),
    counts: dict[str, int] | None = None,
    size: int = 32,
    card_extra: dict | None = None,
    edit_records: Callable[[str, list[dict]], list[dict]] | None = None,
) -> Path:
    """A small valid UltraBench-format task folder with its card in `ws.cards`; `edit_records`
    may change each split's records before they are written (to plant a fault)."""
    counts = counts or {"train": 8, "validation": 4, "test": 6}
    folder = ws.data / f"{name}_v1"
    rng = np.random.default_rng(0)
    for split, count in counts.items():
        records = []
        for i in range(count):
            label = i % len(classes)
            image = rng.integers(20, 120, size=(size, size)).astype(np.uint8)
            image[size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = 140 + 40 * label
            rel = f"images/{split}_{i:03d}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / rel)
            records.append({"image": rel, "label": label, "patient": f"p{split}{i // 2}"})
        if edit_records is not None:
            records = edit_records(split, records)
        (folder / f"{split}.json").write_text(json.dumps(records, indent=2))
    card = {
        "name": name,
        "dataset": f"{name}_v1",
        "classes": list(classes),
        "label_field": "label",
        "group_field": "patient",
        "metric": "macro_f1",
        "split_sizes": dict(counts),
        **(card_extra or {}),
    }
    ws.cards.mkdir(parents=True, exist_ok=True)
    (ws.cards / f"{name}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return folder


def bench_args(task: str = "toy", *extra: str) -> list[str]:
    """A quick bench of the weight-free `pixels` model on one task."""
    return [
        "bench",
        "--model",
        "pixels",
        "--tasks",
        task,
        "--probe",
        "linear",
        "--seeds",
        "1",
        "--fractions",
        "100",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]
