"""Hostile cases: inputs a user can get wrong, each of which must end as one error line, exit
code 2, no traceback and nothing half-written. `tests/test_hostile_inputs.py` runs them all.

Each area keeps its cases in its own module (`data.py`, `results.py`, ...) as a list `CASES`;
`ALL_CASES` gathers them."""

from __future__ import annotations

import importlib
import pkgutil

from tests.hostile_cases.common import Case

AREAS = sorted(
    name for _, name, _ in pkgutil.iter_modules(__path__) if name not in ("common", "__init__")
)
ALL_CASES: list[Case] = [
    case for area in AREAS for case in importlib.import_module(f"{__name__}.{area}").CASES
]
