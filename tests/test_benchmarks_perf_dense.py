"""`make perf` for the dense probe: the figures are written, on a tiny run."""

import itertools
import json

import numpy as np
import torch

from benchmarks import perf_dense


def test_writes_throughput_and_batched_equals_one_at_a_time(tmp_path):
    threads = torch.get_num_threads()
    try:
        code = perf_dense.main(
            ["--out", str(tmp_path), "--device", "cpu", "--epochs", "2", "--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    figures = json.loads((tmp_path / "dense-cpu.json").read_text())
    assert figures["cpu_threads"] == 1
    (small,) = figures["workloads"]  # the CPU's default: the small workload only
    assert small["workload"] == "small" and small["problems"] == 25 and small["epochs"] == 2
    assert small["image_epochs_per_second"] > 0 and small["seconds_per_problem"] > 0
    assert len(small["test_dice_mean_per_fraction"]) == len(small["fractions"]) == 5
    # the same 25 problems one at a time give the same heads
    assert small["max_head_difference"] < 1e-5 and small["max_test_dice_difference"] < 1e-6
    assert small["speedup_vs_one_at_a_time"] > 0


def test_planted_workload_puts_organs_inside_the_scan():
    work = perf_dense.WORKLOADS["small"]
    tokens, masks, valid = perf_dense.planted_segmentation(work, 6, seed=0)
    assert tokens.shape == (6, 64, 32) and tokens.dtype == np.float16
    assert masks.shape == valid.shape == (6, 32, 32)
    assert (masks[valid == 0] == 0).all()
    assert set(np.unique(masks)) == {0, 1, 2}
    again = perf_dense.planted_segmentation(work, 6, seed=0)
    np.testing.assert_array_equal(again[0], tokens)


def test_subsets_are_nested_per_seed():
    problems = perf_dense.subsets_of(200)
    assert len(problems) == 25
    by_seed = {}
    for subset, seed, fraction in problems:
        assert len(subset) == max(1, round(fraction * 200))
        by_seed.setdefault(seed, []).append(set(subset.tolist()))
    for subsets in by_seed.values():
        ordered = sorted(subsets, key=len)
        assert all(a <= b for a, b in itertools.pairwise(ordered))
