"""Whether a folder the run will write (results, cache) can be written, checked before any work:
a path that is a regular file, read-only or impossible is one error line, not a traceback after
the features are computed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ultrabench_eval.core.errors import UserError


def check_writable_folder(path: Path, what: str, flag: str) -> None:
    """Raise UserError unless `path` is, or can be made, a folder this process can write into.
    Nothing is left behind: the nearest existing folder is tried with a temporary folder."""
    path = Path(path).expanduser()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    fix = f"point {flag} at a writable folder"
    if existing is None:
        raise UserError(f"{what} {path} cannot be made: no part of it exists; {fix}")
    if not existing.is_dir():
        raise UserError(f"{what} {path} cannot be made: {existing} is a file, not a folder; {fix}")
    try:
        Path(tempfile.mkdtemp(prefix=".ubench-write-check-", dir=existing)).rmdir()
    except OSError as exc:
        raise UserError(
            f"{what} {path} cannot be written ({exc.strerror or exc} in {existing}); {fix}"
        ) from None
