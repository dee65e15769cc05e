"""The bench's --device reaches the probe: `--device cpu` fits on the CPU even with a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes import LinearProbe
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.protocols.robust import fit_once


class SpyProbe(LinearProbe):
    built: ClassVar[list[LinearProbe]] = []

    def __init__(self, **options) -> None:
        super().__init__(**options)
        SpyProbe.built.append(self)


@pytest.fixture
def spy(monkeypatch):
    SpyProbe.built = []
    monkeypatch.setattr(PROBES, "get", lambda name: SpyProbe)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU is visible
    return SpyProbe.built


def run(device: str, probe_options: dict) -> None:
    cfg = BenchConfig(
        models=["pixels"],
        tasks=["toy"],
        data_root=Path("data"),
        cache_root=Path("cache"),
        results_root=Path("results"),
        probe="linear",
        probe_options=probe_options,
        seeds=1,
        device=device,
    )
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 10)
    x = (rng.normal(size=(20, 3)) + y[:, None]).astype(np.float32)
    features = {"train": x, "validation": x}
    fit_once(cfg, 2, features, {"train": y, "validation": y, "test": y}, [x])


def test_the_bench_device_reaches_the_probe(spy):
    run("cpu", {})
    assert spy[0].device == torch.device("cpu")


def test_a_device_probe_option_wins(spy):
    run("cuda", {"device": "cpu"})
    assert spy[0].device == torch.device("cpu")
