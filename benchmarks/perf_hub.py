"""`make perf`, the Hugging Face half: a real task exported as a `datasets` dataset and loaded
back as a task, and what each step costs.

Workload `real:gallbladder-ba`: the real task in `benchmarks/data/` (4,539 60x60 PNGs, three
splits). Measured:

- export (`ubench export`): seconds, images per second, parquet MB written;
- first load of the export as a task (`--data DIR`): `datasets` reads the parquet files into
  its own cache and the rows are written out as a task folder; seconds and images per second;
- the same load again, files unchanged (the written folder is reused, nothing is loaded);
- the image store built from the loaded task (224 px bicubic) against the one built from the
  original folder: whether every byte is the same.

Writes `results/perf/hub-cpu.json`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.perf import machine, write_figures
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.hub.export import export_task
from ultrabench_eval.data.hub.source import HubSource
from ultrabench_eval.data.hub.tasks import exported_card
from ultrabench_eval.data.image_store import open_store
from ultrabench_eval.data.task_card import SPLITS, read_card

REAL_TASK = "gallbladder-ba"
DATA = Path(__file__).resolve().parent / "data"
SIZE, INTERPOLATION = 224, "bicubic"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_hub", description=__doc__)
    parser.add_argument("--out", default="results/perf", help="folder for the JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ubench-perf-hub-") as scratch:
        # `datasets` keeps its copy of the parquet files under HF_HOME: a scratch one here
        os.environ["HF_HOME"] = str(Path(scratch) / "hf")
        figures = measure(Path(scratch))
    write_figures(figures, args.out, "hub", torch.device("cpu"))
    return 0


def measure(scratch: Path) -> dict[str, Any]:
    card = read_card(DATA / f"{REAL_TASK}.yaml")
    cache = scratch / "cache"
    images = sum(len(s) for s in open_dataset(card, DATA).splits.values())

    started = time.perf_counter()
    summary = export_task(card, DATA, scratch / "export", cache_root=cache, log=lambda _: None)
    export_s = time.perf_counter() - started
    parquet_mb = sum(s.bytes for s in summary.splits.values()) / 1e6

    hub_card = exported_card(HubSource(path=str(scratch / "export")))
    loads = []
    for _ in range(2):  # the first writes the task folder, the second finds it
        started = time.perf_counter()
        loaded = open_dataset(hub_card, DATA, digest_cache=cache)
        loads.append(time.perf_counter() - started)

    original = open_dataset(card, DATA)
    same = {}
    for split in SPLITS:
        a = open_store(original.splits[split], card.dataset, SIZE, cache, progress=False)
        b = open_store(loaded.splits[split], loaded.card.dataset, SIZE, cache, progress=False)
        same[split] = bool(
            a.images.tobytes() == b.images.tobytes() and a.masks.tobytes() == b.masks.tobytes()
        )
    return {
        "machine": machine(torch.device("cpu")),
        "workload": f"real:{REAL_TASK}",
        "made_by": f"benchmarks/data/{REAL_TASK} ({images} 60x60 PNGs, train/validation/test)",
        "images": images,
        "export": {
            "seconds": round(export_s, 2),
            "images_per_s": round(images / export_s, 1),
            "parquet_mb": round(parquet_mb, 2),
            "shards": sum(s.shards for s in summary.splits.values()),
        },
        "load_first": {"seconds": round(loads[0], 2), "images_per_s": round(images / loads[0], 1)},
        "load_again_s": round(loads[1], 3),
        f"image_store_{SIZE}px_identical": same,
    }


if __name__ == "__main__":
    raise SystemExit(main())
