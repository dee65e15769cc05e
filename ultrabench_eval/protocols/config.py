"""What a benchmark run is asked to do, and the checks on it made before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes import fewshot

DEFAULT_SEEDS = 5
DEFAULT_PROBE = "us-jepa-2026"
WEIGHT_FREE_MODELS = ("pixels", "hog", "random-vit-s")
# Bump when what a record holds, or how its scores are computed, changes.
RECORD_LOGIC_VERSION = "2"


@dataclass
class BenchConfig:
    models: list[str]
    tasks: list[str]
    data_root: Path
    cache_root: Path
    results_root: Path
    weights: str | None = None
    pooling: str | None = None
    probe: str = DEFAULT_PROBE
    probe_options: dict[str, Any] = field(default_factory=dict)
    seeds: int = DEFAULT_SEEDS
    fractions: tuple[float, ...] | None = None  # None: the few-shot sweep (or only --shots)
    shots: tuple[int, ...] = ()  # K labels per class
    image_size: int | None = None  # store side in pixels; None: the model's input size
    batch_size: int = 64
    device: str = "auto"
    workers: int = 0
    progress: bool = True
    overwrite: bool = False  # refit even when a record with the same inputs exists

    def budgets(self) -> list[fewshot.Budget]:
        """The label budgets to probe: the fractions (by default the few-shot sweep, unless
        only shots are asked for), then the shots."""
        fractions = self.fractions
        if fractions is None:
            fractions = () if self.shots else fewshot.DEFAULT_FRACTIONS
        return fewshot.budgets(tuple(fractions), tuple(self.shots))


def validate(config: BenchConfig) -> None:
    if not config.models:
        raise UserError("no model given: pass --model NAME[,NAME2] (see `ubench models`)")
    if not config.tasks:
        raise UserError("no task given: pass --tasks NAME[,NAME2] (see `ubench tasks`)")
    if config.weights is not None and len(config.models) != 1:
        raise UserError("--weights applies to one model: pass a single --model with it")
    if config.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {config.seeds}")
    if config.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.image_size is not None and config.image_size < 8:
        raise UserError(f"--image-size must be at least 8 pixels, got {config.image_size}")
    try:
        config.budgets()
    except ValueError as exc:
        raise UserError(f"label budget: {exc} (see --fractions and --shots)") from None
    probe_class = PROBES.get(config.probe)
    try:
        probe_class(**config.probe_options)
    except (TypeError, ValueError) as exc:
        raise UserError(f"probe '{config.probe}' does not take these options: {exc}") from None
