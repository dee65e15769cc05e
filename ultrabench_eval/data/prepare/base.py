"""What a preparer is, and the helpers every preparer uses to find and check a raw download."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ultrabench_eval.core.errors import UserError

_MAX_LISTED = 3


@dataclass(frozen=True)
class Preparer:
    """Turns one dataset's raw download into its UltraBench-format folder.

    `locate` finds the raw tree's root inside what the user gave (the archive may unpack into
    nested folders) and checks its layout, raising a UserError that says what is missing;
    `write` writes `<out>/<dataset>` from that root and may only write below `out`.
    """

    id: str  # named by task cards' `preparer` field, e.g. "ultrabench:aul"
    dataset: str  # the folder it writes, as the task card names it
    layout: str  # what the raw download unpacks to (shown in errors and in the docs)
    download: str  # where the raw data comes from
    split: str  # how the splits are made
    locate: Callable[[Path], Path]
    write: Callable[[Path, Path], None]


def find_root(
    given: Path, is_root: Callable[[Path], bool], what: str, layout: str, depth: int = 3
) -> Path:
    """The one folder at most `depth` levels below `given` (itself included) for which
    `is_root` holds: archives unpack into one or two wrapper folders, and users point at
    either."""
    if not given.exists():
        raise UserError(f"raw data folder {given} does not exist (expected the {what} download)")
    if given.is_file():
        raise UserError(f"{given} is a file; give the folder the {what} download unpacks to")
    found: list[Path] = []
    level = [given]
    for _ in range(depth + 1):
        found += [d for d in level if is_root(d)]
        if found:
            break
        level = [c for d in level for c in _subfolders(d)]
    if not found:
        raise UserError(f"{given} does not hold the {what} download: expected {layout}")
    if len(found) > 1:
        raise UserError(
            f"{given} holds several {what} trees ({listing(str(p) for p in found)}); "
            "give the one to prepare"
        )
    return found[0]


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def listing(items: Iterable[object], limit: int = _MAX_LISTED) -> str:
    """The first few items, comma-separated, with how many more there are."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def require(problems: list[str], where: Path, what: str) -> None:
    """One error for every layout problem found in the raw tree at `where`."""
    if problems:
        raise UserError(f"the {what} download at {where} is incomplete: {listing(problems)}")
