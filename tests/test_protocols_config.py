"""`protocols.config.validate`: every limit of a bench, robustness or extraction config is
checked before any work, and a problem is one UserError line naming the flag."""

from __future__ import annotations

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.features.extract_run import ExtractConfig
from ultrabench_eval.protocols.config import (
    DEFAULT_PROBE,
    DEFAULT_REFERENCE,
    DEFAULT_SEEDS,
    BenchConfig,
    validate,
)
from ultrabench_eval.protocols.robust import RobustConfig


def _bench(tmp_path, **overrides) -> BenchConfig:
    values = {
        "models": ["pixels"],
        "tasks": ["synth-view"],
        "data_root": tmp_path / "data",
        "cache_root": tmp_path / "cache",
        "results_root": tmp_path / "results",
    }
    return BenchConfig(**{**values, **overrides})


def _extract(tmp_path, **overrides) -> ExtractConfig:
    values = {
        "models": ["pixels"],
        "tasks": ["synth-view"],
        "data_root": tmp_path / "data",
        "cache_root": tmp_path / "cache",
    }
    return ExtractConfig(**{**values, **overrides})


def _line(config) -> str:
    with pytest.raises(UserError) as caught:
        validate(config)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_defaults_pass(tmp_path):
    validate(_bench(tmp_path))
    validate(_extract(tmp_path))
    validate(RobustConfig(_bench(tmp_path), [("blur", 1)]))
    config = _bench(tmp_path)
    assert (config.probe, config.seeds, config.batch_size, config.device, config.workers) == (
        DEFAULT_PROBE,
        DEFAULT_SEEDS,
        64,
        "auto",
        0,
    )
    assert RobustConfig(config, [("blur", 1)]).reference == DEFAULT_REFERENCE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seeds": 0}, "--seeds must be at least 1, got 0"),
        ({"batch_size": 0}, "--batch-size must be at least 1, got 0"),
        ({"image_size": 4}, "--image-size must be at least 8, got 4"),
        ({"workers": -1}, "--workers must be at least 0, got -1"),
        ({"device": "gpu"}, "--device is not valid, got 'gpu' (use auto, cpu, cuda or cuda:N)"),
        ({"seeds": "five"}, "--seeds must be a whole number, got 'five'"),
        ({"fractions": (1.5,)}, "label budget: fraction must be in (0, 1], got 1.5"),
        ({"shots": (0,)}, "label budget: shots must be at least 1"),
        ({"tasks": []}, "no task given"),
        ({"probe_options": {"batch_size": 0}}, "probe 'us-jepa-2026': batch_size must be at least"),
        ({"probe_options": {"nope": 1}}, "probe 'us-jepa-2026' does not take these options: "),
        ({"probe": "knn", "probe_options": {"ks": "x"}}, "probe 'knn' does not take these"),
    ],
)
def test_bench_limits(tmp_path, overrides, message):
    assert message in _line(_bench(tmp_path, **overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be at least 1, got 0"),
        ({"splits": ("train", "val")}, "--splits[1] must be 'train', 'validation' or 'test'"),
        ({"models": []}, "--model must have at least 1 item(s), got [] (see `ubench models`)"),
        ({"image_size": 2}, "--image-size must be at least 8, got 2"),
        ({"device": "cuda:x"}, "--device is not valid"),
        ({"models": ["a", "b"], "weights": "w.pth"}, "--weights applies to one model"),
    ],
)
def test_extract_limits(tmp_path, overrides, message):
    assert message in _line(_extract(tmp_path, **overrides))


@pytest.mark.parametrize(
    ("suite", "seed", "bench", "message"),
    [
        ([], 0, {}, "--corruptions must have at least 1 item(s), got [] (pass --corruptions"),
        ([("blur", 0)], 0, {}, "--corruptions[0][1] must be at least 1, got 0"),
        ([("blur", 1)], -1, {}, "--corruption-seed must be at least 0, got -1"),
        ([("blur", 1)], 0, {"seeds": 0}, "--seeds must be at least 1"),
    ],
)
def test_robust_limits(tmp_path, suite, seed, bench, message):
    config = RobustConfig(_bench(tmp_path, **bench), suite, seed=seed)
    assert message in _line(config)
