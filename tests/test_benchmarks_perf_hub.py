"""`benchmarks.perf_hub` on a small generated task: every figure is there, and the image store
built from the exported-then-loaded task is the original's, byte for byte."""

from __future__ import annotations

import yaml
from conftest import make_dataset

from benchmarks import perf_hub


def test_the_figures_of_an_export_and_its_load(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data", name="toy")
    (tmp_path / "data" / "toy.yaml").write_text(
        yaml.safe_dump({"name": "toy", "dataset": card.dataset, "classes": ["a", "b"]})
    )
    monkeypatch.setattr(perf_hub, "DATA", tmp_path / "data")
    monkeypatch.setattr(perf_hub, "REAL_TASK", "toy")
    monkeypatch.setattr(perf_hub, "SIZE", 32)

    figures = perf_hub.measure(tmp_path / "scratch")

    assert figures["images"] == 18
    assert figures["export"]["shards"] == 3 and figures["export"]["parquet_mb"] > 0
    assert figures["load_first"]["images_per_s"] > 0 and figures["load_again_s"] >= 0
    assert figures["image_store_32px_identical"] == {
        "train": True,
        "validation": True,
        "test": True,
    }
