"""The token cache: one memory-mappable `.npy` file of patch tokens [N, T, D] and one JSON sidecar
per (model fingerprint, task, split, view, storage dtype).

Layout: `<cache>/tokens/<model>-<fingerprint>/<task>/<split>/<view>.<dtype>.npy` and
`<view>.<dtype>.json`, beside `<cache>/features/` and keyed like it (the same fingerprint, view
name and view code digest), with the storage dtype added. A probe maps the file and reads the
rows it needs; nothing loads the whole array.

The sidecar holds the hash of the image-id list, the image store's content hash, the digest of
the view's corruption code and of the token extraction code, the grid, dtype and shape, and the
sha256 of the array's bytes (the `.npy` data after its header). A file whose sidecar does not
match the current split is recomputed, never reused. The checksum is verified once per process
per file, like the image store's content hash (one read of the file: sha256 runs at about 0.3-1
GB/s on one core); a mismatch is recomputed with one warning line on stderr. A file this process
wrote was hashed as its rows were written and is not read back.

Writing: rows go into `<view>.<dtype>.partial.npy`, pre-sized to [N, T, D] with its disk blocks
reserved (a sparse map on a full disk kills the process instead of raising), and its own sidecar
`<view>.<dtype>.partial.json` records how many rows are done (and their sha256) at each
checkpoint, so a killed run resumes from them. At the end the old sidecar is removed, the
partial file renamed onto the final name and the final sidecar written last: a reader only
trusts a data file its sidecar describes (and whose bytes match its checksum). One process at a
time fills an entry (an exclusive lock on `.<view>.<dtype>.lock`, released by the system when
the process dies), so two processes asking for the same entry leave one valid file: the second
waits and then reads it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.naming import safe_name
from ultrabench_eval.features.feature_cache import CacheKey, ids_hash

try:  # POSIX; elsewhere entries are not locked (two writers still leave a whole file each time)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

TOKEN_FORMAT = "1"
PARTIAL = "partial"
DTYPES = ("float16", "float32")
# Room kept free beside the file's own bytes (sidecars, the file system's own needs).
SPACE_MARGIN = 64 << 20
_CHUNK = 8 << 20  # bytes per read when hashing
# The sidecar fields that must equal the current run's for a file to be used.
_IDENTITY = (
    "format",
    "fingerprint",
    "view_code_sha256",
    "extraction_code_sha256",
    "dtype",
    "ids_sha256",
    "store_content_sha256",
)
# Files whose bytes this process has hashed: path -> (file identity then, sha256).
_VERIFIED: dict[Path, tuple[tuple[int, int, int], str]] = {}
# ... and those it found damaged (so one file is hashed and reported once).
_DAMAGED: dict[Path, tuple[tuple[int, int, int], str]] = {}


@dataclass(frozen=True)
class TokenKey:
    model: str
    fingerprint: str
    task: str
    split: str
    view: str = "clean"
    view_code: str = ""  # digest of the view's corruption code (cache_identity.view_code_digest)
    dtype: str = "float16"

    @classmethod
    def of(cls, key: CacheKey, dtype: str) -> TokenKey:
        """The token entry of a feature cache key: the same identity, plus the storage dtype."""
        return cls(key.model, key.fingerprint, key.task, key.split, key.view, key.view_code, dtype)

    def folder(self, cache_root: Path) -> Path:
        return (
            Path(cache_root)
            / "tokens"
            / f"{safe_name(self.model)}-{self.fingerprint}"
            / safe_name(self.task)
            / self.split
        )

    def stem(self, part: str = "") -> str:
        return f"{safe_name(self.view)}.{self.dtype}" + (f".{part}" if part else "")

    def paths(self, cache_root: Path, part: str = "") -> tuple[Path, Path]:
        """(data file, sidecar) of the final file, or of the `partial` one."""
        folder = self.folder(cache_root)
        stem = self.stem(part)
        return folder / f"{stem}.npy", folder / f"{stem}.json"

    def lock_path(self, cache_root: Path) -> Path:
        return self.folder(cache_root) / f".{self.stem()}.lock"


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype of a storage dtype name (float16 or float32)."""
    if name not in DTYPES:
        raise UserError(f"token dtype '{name}' is not supported (use one of: {', '.join(DTYPES)})")
    return np.dtype(name)


def human_bytes(count: float) -> str:
    """`485.3 MB`: decimal units, one decimal."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def identity(
    key: TokenKey,
    ids: list[str],
    content_hash: str,
    code: str,
    shape: tuple[int, int, int] | None = None,
    grid: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """What a sidecar must say for its file to be used: the `_IDENTITY` fields, and the shape
    and grid when known."""
    out: dict[str, Any] = {
        "format": TOKEN_FORMAT,
        "model": key.model,
        "fingerprint": key.fingerprint,
        "task": key.task,
        "split": key.split,
        "view": key.view,
        "view_code_sha256": key.view_code,
        "extraction_code_sha256": code,
        "dtype": key.dtype,
        "count": len(ids),
        "ids_sha256": ids_hash(ids),
        "store_content_sha256": content_hash,
    }
    if shape is not None:
        out["shape"] = [int(v) for v in shape]
    if grid is not None:
        out["grid"] = [int(v) for v in grid]
    return out


def _matches(sidecar: dict, expected: dict) -> bool:
    names = [*_IDENTITY, "count", *(k for k in ("shape", "grid") if k in expected)]
    return all(sidecar.get(name) == expected[name] for name in names)


def _read_sidecar(path: Path) -> dict | None:
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return sidecar if isinstance(sidecar, dict) else None


def load(
    key: TokenKey, cache_root: Path, ids: list[str], content_hash: str, code: str
) -> tuple[np.memmap, dict] | None:
    """(read-only memory map [N, T, D], sidecar) of the whole cached file of exactly these
    images, else None."""
    data_path, sidecar_path = key.paths(cache_root)
    sidecar = _read_sidecar(sidecar_path)
    expected = identity(key, ids, content_hash, code)
    if sidecar is None or not _matches(sidecar, expected) or sidecar.get("done") != len(ids):
        return None
    try:
        tokens = np.load(data_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None  # missing, truncated or not an array: recompute
    if list(tokens.shape) != sidecar.get("shape") or tokens.dtype != np.dtype(key.dtype):
        return None
    matches = _bytes_match(data_path, tokens.offset, tokens.nbytes, sidecar.get("data_sha256"))
    if matches is None:
        return None  # found damaged before: said once already
    if not matches:
        print(
            f"warning: cached tokens {data_path} do not match their checksum (the file was "
            "damaged): recomputing them",
            file=sys.stderr,
        )
        return None
    return tokens, sidecar


def _file_identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _bytes_match(path: Path, offset: int, nbytes: int, expected: Any) -> bool | None:
    """Whether the array bytes of `path` hash to `expected`, hashed once per process and file:
    None when this process already found these bytes damaged."""
    resolved = path.resolve()
    current = (_file_identity(resolved), expected)
    if _VERIFIED.get(resolved) == current:
        return True
    if _DAMAGED.get(resolved) == current:
        return None
    try:
        digest = data_sha256(resolved, offset, nbytes)
    except OSError:
        digest = None
    if digest != expected:
        _DAMAGED[resolved] = current
        return False
    _VERIFIED[resolved] = current
    return True


def data_sha256(path: Path, offset: int, nbytes: int) -> str:
    """sha256 of `nbytes` bytes of `path` from `offset` (plain reads: a damaged file is an
    answer, not a crash)."""
    return _hash_range(path, offset, nbytes).hexdigest()


def _hash_range(path: Path, offset: int, nbytes: int, digest: Any = None) -> Any:
    digest = digest if digest is not None else hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(offset)
        left = nbytes
        while left > 0:
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                raise OSError(f"{path} ends {left} bytes early")
            digest.update(chunk)
            left -= len(chunk)
    return digest


def partial_bytes(key: TokenKey, cache_root: Path) -> int:
    """Bytes the partial file of `key` holds on disk now (0 when there is none): space a new
    run reuses or frees before it reserves its own."""
    data_path, _ = key.paths(cache_root, PARTIAL)
    try:
        return data_path.stat().st_size
    except OSError:
        return 0


def partial_rows(
    key: TokenKey,
    cache_root: Path,
    ids: list[str],
    content_hash: str,
    code: str,
    shape: tuple[int, int, int],
    grid: tuple[int, int],
) -> int:
    """Rows an interrupted run left in the partial file, by its sidecar (0 when none can be
    resumed); their bytes are checked when the writer opens it."""
    _, sidecar_path = key.paths(cache_root, PARTIAL)
    sidecar = _read_sidecar(sidecar_path)
    if sidecar is None or not _matches(
        sidecar, identity(key, ids, content_hash, code, shape, grid)
    ):
        return 0
    done = sidecar.get("done")
    return done if isinstance(done, int) and 0 <= done <= len(ids) else 0


def check_free_space(key: TokenKey, cache_root: Path, needed: int, total: int) -> None:
    """Raise one UserError line when the cache folder cannot hold `needed` more bytes (the file
    is `total` bytes) and a margin."""
    folder = key.folder(cache_root)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed + SPACE_MARGIN:
        raise UserError(
            f"not enough free space for tokens in {folder}: they need {human_bytes(total)} "
            f"(+{human_bytes(SPACE_MARGIN)} margin), {human_bytes(free)} are free; point --cache "
            "(or UBENCH_CACHE) at another folder, or free some with `ubench cache rm`"
        )


@contextlib.contextmanager
def entry_lock(key: TokenKey, cache_root: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the entry's lock: one process at a time fills it (says so when it has to wait)."""
    path = key.lock_path(cache_root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as exc:
        raise UserError(
            f"cannot write tokens in {path.parent}: {exc.strerror or exc}; point --cache (or "
            "UBENCH_CACHE) at a writable folder"
        ) from None
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for another process writing tokens into {key.folder(cache_root)}")
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


class TokenWriter:
    """The partial file of one entry, filled in row order; `finish` makes it the final file.

    Open it with `TokenWriter.open` while holding `entry_lock`.
    """

    def __init__(
        self, key: TokenKey, cache_root: Path, header: dict, array: np.memmap, done: int, digest
    ) -> None:
        self.key = key
        self.cache_root = Path(cache_root)
        self.header = header  # the identity every sidecar of this entry repeats
        self.array: np.memmap | None = array
        self.done = done
        self.resumed = done
        self._digest = digest  # sha256 of rows [0, done), continued as rows are written

    @classmethod
    def open(
        cls,
        key: TokenKey,
        cache_root: Path,
        ids: list[str],
        content_hash: str,
        code: str,
        shape: tuple[int, int, int],
        grid: tuple[int, int],
    ) -> TokenWriter:
        """Resume the partial file when it holds rows of exactly this entry, else start one."""
        header = identity(key, ids, content_hash, code, shape, grid)
        data_path, sidecar_path = key.paths(cache_root, PARTIAL)
        resumed = _resume(data_path, sidecar_path, header)
        if resumed is not None:
            array, done, digest = resumed
            return cls(key, cache_root, header, array, done, digest)
        for path in (sidecar_path, data_path):
            path.unlink(missing_ok=True)
        array = _reserved_npy(data_path, shape, np.dtype(key.dtype))
        return cls(key, cache_root, header, array, 0, hashlib.sha256())

    @property
    def count(self) -> int:
        return int(self.header["count"])

    def write(self, rows: np.ndarray) -> None:
        """Append rows [b, T, D] of the storage dtype after those done."""
        assert self.array is not None, "the writer is finished"
        rows = np.ascontiguousarray(rows)
        if rows.dtype != self.array.dtype or rows.shape[1:] != self.array.shape[1:]:
            raise ValueError(f"rows {rows.dtype} {rows.shape} do not fit {self.array.shape}")
        stop = self.done + rows.shape[0]
        if stop > self.count:
            raise ValueError(f"{stop} rows written into a file of {self.count}")
        self.array[self.done : stop] = rows
        self._digest.update(rows.data)
        self.done = stop

    def checkpoint(self) -> None:
        """Make the rows done so far durable, then record them in the partial sidecar."""
        assert self.array is not None, "the writer is finished"
        self.array.flush()
        _, sidecar_path = self.key.paths(self.cache_root, PARTIAL)
        atomic.write_json(
            sidecar_path,
            {**self.header, "done": self.done, "rows_sha256": self._digest.copy().hexdigest()},
        )

    def finish(self, extra: dict | None = None) -> None:
        """Rename the full partial file onto the final name; the final sidecar goes last."""
        assert self.array is not None, "the writer is finished"
        if self.done != self.count:
            raise ValueError(f"{self.done} of {self.count} rows written")
        self.array.flush()
        self.array = None  # the map is closed when collected; nothing writes to it any more
        partial_data, partial_sidecar = self.key.paths(self.cache_root, PARTIAL)
        data_path, sidecar_path = self.key.paths(self.cache_root)
        sidecar_path.unlink(missing_ok=True)  # the old sidecar must not describe the new file
        os.replace(partial_data, data_path)
        digest = self._digest.hexdigest()
        atomic.write_json(
            sidecar_path,
            {**self.header, "done": self.done, "data_sha256": digest, **(extra or {})},
        )
        partial_sidecar.unlink(missing_ok=True)
        # its bytes were hashed as they were written: no need to read them back in this process
        _VERIFIED[data_path.resolve()] = (_file_identity(data_path), digest)

    def discard(self) -> None:
        """Remove the partial file and its sidecar."""
        self.array = None
        for path in self.key.paths(self.cache_root, PARTIAL):
            path.unlink(missing_ok=True)


def _resume(data_path: Path, sidecar_path: Path, header: dict):
    """(map, rows done, sha256 of those rows) of a partial file an interrupted run left for
    exactly this entry, else None (a damaged one with a warning line)."""
    sidecar = _read_sidecar(sidecar_path)
    if sidecar is None or not _matches(sidecar, header):
        return None
    done = sidecar.get("done")
    if not isinstance(done, int) or not 0 <= done <= header["count"]:
        return None
    try:
        array = np.lib.format.open_memmap(data_path, mode="r+")
    except (OSError, ValueError):
        return None
    if list(array.shape) != header["shape"] or array.dtype != np.dtype(header["dtype"]):
        return None
    row_bytes = array.nbytes // max(1, array.shape[0])
    try:
        digest = _hash_range(data_path, array.offset, done * row_bytes)
    except OSError:
        digest = None
    if digest is None or digest.hexdigest() != sidecar.get("rows_sha256"):
        print(
            f"warning: the rows an interrupted run left in {data_path} do not match their "
            "checksum: starting again",
            file=sys.stderr,
        )
        return None
    return array, done, digest


def _reserved_npy(path: Path, shape: tuple[int, int, int], dtype: np.dtype) -> np.memmap:
    """A writable `.npy` memory map of `shape` whose disk blocks are reserved first: writing
    into a sparse map on a full disk kills the process (SIGBUS) instead of raising."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    nbytes = int(np.prod(shape)) * dtype.itemsize
    try:
        with path.open("wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            total = handle.tell() + nbytes
            _reserve(handle, total)
        return np.lib.format.open_memmap(path, mode="r+")
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise UserError(
            f"cannot write tokens to {path}: {exc.strerror or exc}; point --cache (or "
            "UBENCH_CACHE) at a writable folder with free space, or free some (`ubench cache rm`)"
        ) from None


def _reserve(handle, total: int) -> None:
    """Allocate `total` bytes for the open file (sparse where the file system cannot)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(handle.fileno(), 0, total)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    handle.truncate(total)
