"""`make perf` for corruptions: the figures are written, for every corruption of the suites."""

import json

import cv2
import pytest
import torch

from benchmarks import perf_corruptions
from ultrabench_eval.corruptions.presets import PRESETS


def test_writes_a_rate_per_corruption_and_a_speedup_where_a_reference_exists(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        code = perf_corruptions.main(
            [
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--images",
                "4",
                "--cpu-images",
                "2",
                "--size",
                "32",
                "--batch-size",
                "2",
                "--threads",
                "1",
            ]
        )
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(-1)  # OpenCV's default
    assert code == 0
    figures = json.loads((tmp_path / "corruptions-cpu.json").read_text())
    rows = figures["corruptions"]
    assert set(rows) == {c for p in PRESETS.values() for c in p.corruptions}
    assert all(r["device_images_per_second"] > 0 for r in rows.values())
    noise = rows["gaussian-noise"]
    assert noise["cpu_reference"] == "albumentations.GaussNoise" and noise["severity"] == 3
    ratio = noise["device_images_per_second"] / noise["cpu_per_image_images_per_second"]
    assert noise["speedup_vs_cpu_per_image"] == pytest.approx(ratio, rel=0.02, abs=0.01)
    assert rows["speckle"]["cpu_reference"] is None  # no such transform elsewhere
    assert figures["image_size"] == 32 and figures["cpu_threads"] == 1


def test_test_images_have_sector_and_linear_masks():
    images, masks = perf_corruptions.test_images(4, 64)
    assert images.shape == masks.shape == (4, 64, 64)
    assert (images[masks == 0] == 0).all() and (images[masks == 1] > 0).all()
    assert not (masks[0] == masks[1]).all()
