"""Where data, caches and results live: flags win over environment variables, which win over
defaults."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "UBENCH_DATA"
CACHE_ENV = "UBENCH_CACHE"
RESULTS_ENV = "UBENCH_RESULTS"
TASKS_ENV = "UBENCH_TASKS"

# The installed package; in a checkout, its parent holds `tasks/` and `results/published/`.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def data_root(flag: str | os.PathLike | None = None) -> Path:
    """Dataset root: one UltraBench-format folder per task below it."""
    return _resolve(flag, DATA_ENV, Path("data"))


def cache_root(flag: str | os.PathLike | None = None) -> Path:
    """Root of the image store and the feature cache."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    default = Path(xdg) if xdg else Path.home() / ".cache"
    return _resolve(flag, CACHE_ENV, default / "ultrabench-eval")


def results_root(flag: str | os.PathLike | None = None) -> Path:
    """Where result records and tables are written."""
    return _resolve(flag, RESULTS_ENV, Path("results") / "runs")


def _resolve(flag: str | os.PathLike | None, env: str, default: Path) -> Path:
    if flag:
        return Path(flag).expanduser()
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    return default
