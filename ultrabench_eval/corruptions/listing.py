"""What `ubench corruptions` prints: the corruptions, every parameter at every severity in one
table, and the suites."""

from __future__ import annotations

from tabulate import tabulate

from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.presets import PRESETS


def corruption_rows() -> list[list[str]]:
    return [
        [name, f"1-{c.max_severity}", c.description, ", ".join(_suites(name))]
        for name, c in CORRUPTIONS.items()
    ]


def parameter_rows() -> list[list[str]]:
    """One row per (corruption, parameter): its value at each severity and what it means."""
    most = max((c.max_severity for _, c in CORRUPTIONS.items()), default=0)
    rows = []
    for name, corruption in CORRUPTIONS.items():
        table = corruption.table or {"level": corruption.levels}
        for key, values in table.items():
            cells = [_number(v) for v in values] + [""] * (most - len(values))
            rows.append([name, key, *cells, corruption.units.get(key, "")])
    return rows


def render() -> str:
    most = max((c.max_severity for _, c in CORRUPTIONS.items()), default=0)
    parts = [
        "corruptions (applied inside the scan mask; `ubench corruptions show` draws them)\n",
        tabulate(
            corruption_rows(),
            headers=["name", "severities", "description", "suites"],
            tablefmt="github",
            disable_numparse=True,
        ),
        "\nparameters by severity (pixel sizes are for a 224-px image and scale with its side)\n",
        tabulate(
            parameter_rows(),
            headers=["corruption", "parameter", *[f"s{s}" for s in range(1, most + 1)], "meaning"],
            tablefmt="github",
            disable_numparse=True,
        ),
        "\nsuites (`ubench robust --preset NAME`)\n",
        tabulate(
            [
                [p.name, ", ".join(p.corruptions), _range(p.severities), p.description]
                for p in PRESETS.values()
            ],
            headers=["preset", "corruptions", "severities", "description"],
            tablefmt="github",
            disable_numparse=True,
        ),
    ]
    return "\n".join(parts) + "\n"


def _suites(name: str) -> list[str]:
    return [p.name for p in PRESETS.values() if name in p.corruptions]


def _number(value: float) -> str:
    return f"{value:g}"


def _range(severities: tuple[int, ...]) -> str:
    if list(severities) == list(range(severities[0], severities[-1] + 1)):
        return f"{severities[0]}-{severities[-1]}"
    return ",".join(str(s) for s in severities)
