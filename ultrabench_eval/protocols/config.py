"""What a run is asked to do, its defaults, and the checks on it made before any work.

Each setting's type and limits are declared once, on the dataclass field (see
`ultrabench_eval.core.validation`); `validate` checks them, the cross-field rules and the probe's
options, and turns the first problem into one UserError line. The command line takes its
defaults from here, so this module stays light to import (the probes load when used).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from annotated_types import Ge, MinLen

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_WORKERS,
    BatchSize,
    DeviceName,
    Hint,
    ImageSide,
    Workers,
    check_dataclass,
    check_value,
    flag_label,
    one_line,
)

if TYPE_CHECKING:
    from ultrabench_eval.features.extract_run import ExtractConfig
    from ultrabench_eval.probes.fewshot import Budget
    from ultrabench_eval.protocols.robust import RobustConfig

DEFAULT_SEEDS = 5
DEFAULT_PROBE = "us-jepa-2026"
DEFAULT_REFERENCE = "pixels"  # the robustness protocol's reference model (mCE)
WEIGHT_FREE_MODELS = ("pixels", "hog", "random-vit-s")
# Bump when what a record holds, or how its scores are computed, changes (3: seeds that share
# one probe fit share one entry, `scores.fits`).
RECORD_LOGIC_VERSION = "3"

# Fields whose flag is not `--<field-name>`.
_FLAGS = {
    "models": "--model",
    "data_root": "--data",
    "cache_root": "--cache",
    "results_root": "--results",
    "probe_options": "--probe-option",
    "seed": "--corruption-seed",
    "suite": "--corruptions",
}


def _flag(name: str) -> str:
    return _FLAGS.get(name, flag_label(name))


@dataclass
class BenchConfig:
    models: list[str]
    tasks: list[str]
    data_root: Path
    cache_root: Path
    results_root: Path
    weights: str | Path | None = None
    pooling: str | None = None
    probe: str = DEFAULT_PROBE
    probe_options: dict[str, Any] = field(default_factory=dict)
    seeds: Annotated[int, Ge(1)] = DEFAULT_SEEDS
    # None: the few-shot sweep (or only --shots); limits: probes.fewshot.Budget
    fractions: tuple[float, ...] | None = None
    shots: tuple[int, ...] = ()  # K labels per class
    image_size: ImageSide | None = None  # store side in pixels; None: the model's input size
    batch_size: BatchSize = DEFAULT_BATCH_SIZE
    device: DeviceName = DEFAULT_DEVICE
    workers: Workers = DEFAULT_WORKERS
    progress: bool = True
    overwrite: bool = False  # refit even when a record with the same inputs exists
    # run although an image or group lies in two splits (the records say so)
    allow_overlap: bool = False

    def budgets(self) -> list[Budget]:
        """The label budgets to probe: the fractions (by default the few-shot sweep, unless
        only shots are asked for), then the shots."""
        from ultrabench_eval.probes import fewshot

        fractions = self.fractions
        if fractions is None:
            fractions = () if self.shots else fewshot.DEFAULT_FRACTIONS
        return fewshot.budgets(tuple(fractions), tuple(self.shots))


# What `RobustConfig` (protocols/robust.py) adds to its BenchConfig, and the limits on it.
ROBUST_LIMITS: dict[str, Any] = {
    "suite": Annotated[
        list[tuple[str, Annotated[int, Ge(1)]]],
        MinLen(1),
        Hint("pass --corruptions NAME[,NAME2] or --preset NAME"),
    ],
    "reference": str | None,
    "seed": Annotated[int, Ge(0)],
}


def validate(config: BenchConfig | RobustConfig | ExtractConfig) -> None:
    """Check a bench, robustness or extraction config before any work (one UserError line)."""
    from ultrabench_eval.features.extract_run import ExtractConfig

    if isinstance(config, ExtractConfig):
        _validate_extract(config)
    elif isinstance(config, BenchConfig):
        _validate_bench(config)
    else:
        _validate_bench(config.bench)
        for name, annotation in ROBUST_LIMITS.items():
            check_value(annotation, getattr(config, name), _flag(name))


def _validate_bench(config: BenchConfig) -> None:
    from ultrabench_eval.core.registry import PROBES

    if not config.models:
        raise UserError("no model given: pass --model NAME[,NAME2] (see `ubench models`)")
    if not config.tasks:
        raise UserError("no task given: pass --tasks NAME[,NAME2] (see `ubench tasks`)")
    _one_model_for_weights(config.models, config.weights)
    check_dataclass(config, label=_flag)
    _check_device_exists(config.device)
    try:
        config.budgets()
    except ValueError as exc:
        raise UserError(f"label budget: {exc} (see --fractions and --shots)") from None
    probe_class = PROBES.get(config.probe)
    try:  # each probe checks its own options when built: unknown or mistyped is a TypeError
        probe_class(**config.probe_options)
    except TypeError as exc:
        raise UserError(
            f"probe '{config.probe}' does not take these options: {one_line(exc)}"
        ) from None
    except ValueError as exc:
        raise UserError(f"probe '{config.probe}': {one_line(exc)} (see --probe-option)") from None


def _validate_extract(config: ExtractConfig) -> None:
    check_dataclass(config, label=_flag)
    _one_model_for_weights(config.models, config.weights)
    _check_device_exists(config.device)


def _check_device_exists(device: str) -> None:
    """A device this machine lacks (`mps`, `cuda` without a GPU) is refused before any work,
    not when the first tensor moves there."""
    from ultrabench_eval.core.device import resolve_device

    resolve_device(device)


def _one_model_for_weights(models: list[str], weights: str | Path | None) -> None:
    if weights is not None and len(models) != 1:
        raise UserError("--weights applies to one model: pass a single --model with it")
