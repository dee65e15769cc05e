"""How the commands print: progress notes on stderr, tables on stdout."""

from __future__ import annotations

import sys
from typing import Any


def info(message: str) -> None:
    sys.stderr.write(message + "\n")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from tabulate import tabulate

    body = [[short(row.get(c)) for c in columns] for row in rows]
    print(tabulate(body, headers=columns, tablefmt="github", disable_numparse=True))


def short(value: Any, limit: int = 60) -> str:
    """A table cell: parameter counts in millions, lists joined, long text cut."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value / 1e6:.1f}M" if value >= 100_000 else str(value)
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
