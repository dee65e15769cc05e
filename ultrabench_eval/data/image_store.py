"""The image store: each split decoded once into memory-mapped grayscale uint8 arrays.

Layout under `<cache>/images/<dataset>/<split>-<size>px-<interpolation>/`: `images.u8`
[N, S, S], `masks.u8` [N, S, S] (scan masks, 0/1) and `meta.json`. The resize from the original
image is done here, once, with PIL and the model's interpolation, as a hand-written PIL loop
would do it; a model whose input size is the store's then sees exactly those pixels. The folder
is built beside its final place and renamed into it, so a store is either whole or absent. It
is rebuilt when the split's manifest (image and mask paths, file sizes and modification times)
changes, and when its bytes no longer match the content hash in `meta.json` (checked once per
process when opened: one read of the store, 1-2 s per GB).

A build decodes, resizes and derives scan masks in worker processes, one per usable CPU (see
`store_build`), and records what each stage cost in `ImageStore.build_stats` (timing lives
there, never in `meta.json`: the store's bytes do not depend on it).

A build first checks the free space (N x S x S x 2 bytes) and reserves it, so a full disk is one
error line rather than a crash while writing the memory map; a build's temporary folder is
`.<name>.tmp-<host>-<pid>`, and those a killed run left behind are removed by the next build
(see `stale_temp_dirs`).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data import store_build
from ultrabench_eval.data.dataset import Record, Split
from ultrabench_eval.data.scan_mask import derive_scan_mask

STORE_VERSION = "2"
# The PIL filter for each interpolation an input spec may name ("area" is PIL's box filter).
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "nearest-exact": Image.Resampling.NEAREST,  # torch's name for PIL's nearest rule
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
}
# A temporary folder from another host (whose process cannot be checked) or from the previous
# naming is left alone until this old.
STALE_AFTER_S = 24 * 3600
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
# Stores whose content this process has verified: root -> the files' identity then.
_VERIFIED: dict[Path, tuple] = {}
# Room kept free beside a store's own bytes (meta.json, the file system's own needs).
_SPACE_MARGIN = 16 << 20
# Below this many images, starting worker processes costs more than it saves.
_PARALLEL_MIN_IMAGES = 256


@dataclass(frozen=True)
class ImageStore:
    root: Path
    meta: dict
    images: np.ndarray
    masks: np.ndarray
    # What building it cost, when this call built it (None when opened from disk): `images`,
    # `seconds` (wall), `images_per_s`, `workers`, and the CPU seconds per stage summed over the
    # processes: `decode_s`, `resize_s`, `mask_s`, `write_s` (rows into the files, then the
    # flush), `hash_s` (the content hash). Wall time grows on a busy machine, CPU time not.
    build_stats: dict[str, float] | None = field(default=None, compare=False)

    @property
    def ids(self) -> list[str]:
        return list(self.meta["ids"])

    @property
    def content_hash(self) -> str:
        return str(self.meta["content_sha256"])

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def __len__(self) -> int:
        return int(self.meta["count"])

    def batches(self, batch_size: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start index, images [b, S, S], masks [b, S, S]) in order."""
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            yield start, self.images[start:stop], self.masks[start:stop]


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L")


def read_grayscale(path: Path) -> np.ndarray:
    """Decode an image file to 2-D uint8 grayscale (colour by ITU-R 601 luma).

    16-bit images (a 16-bit PNG, which Pillow may also open as mode "I") are scaled by their bit
    depth, 65535 -> 255 (divide by 257, rounded), as a reader of the format expects: an 8-bit
    original saved as 16 bits (x 257) comes back exactly. Other 32-bit integer and float images
    have no fixed range and are scaled by their own maximum."""
    with Image.open(path) as img:
        img.load()
        if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
            array = np.asarray(img, dtype=np.float64)
            return np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)
        if img.mode in ("I", "F"):
            array = np.asarray(img, dtype=np.float64)
            top = array.max()
            array = array * (255.0 / top) if top > 0 else array
            return np.clip(np.rint(array), 0, 255).astype(np.uint8)
        return np.asarray(img.convert("L"), dtype=np.uint8)


def resize_gray(
    image: np.ndarray, size: int, resample: int = Image.Resampling.BICUBIC
) -> np.ndarray:
    if image.shape == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), resample=resample))


def decode_record(
    root: Path,
    record: Record,
    size: int,
    interpolation: str = "bicubic",
    *,
    stages: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One record -> (image uint8 [S, S], scan mask uint8 0/1 [S, S]).

    `stages`: the CPU seconds spent are added to its "decode_s", "mask_s" and "resize_s"."""
    clock = time.process_time  # CPU time: what a stage costs, however busy the machine
    started = clock()
    image = _decode(root / record.image, "image")
    mask_file = None if record.scan_mask is None else _decode(root / record.scan_mask, "scan mask")
    decoded = clock()
    if mask_file is not None:
        mask = mask_file > 0
        if mask.shape != image.shape:
            raise UserError(
                f"scan mask {root / record.scan_mask} is {mask.shape[::-1]} pixels, the image "
                f"{record.image} {image.shape[::-1]} (make them the same size, then run again)"
            )
    else:
        mask = derive_scan_mask(image)
    masked = clock()
    mask_u8 = resize_gray(mask.astype(np.uint8), size, Image.Resampling.NEAREST)
    resized = resize_gray(image, size, PIL_FILTERS[interpolation])
    if stages is not None:
        stages["decode_s"] = stages.get("decode_s", 0.0) + decoded - started
        stages["mask_s"] = stages.get("mask_s", 0.0) + masked - decoded
        stages["resize_s"] = stages.get("resize_s", 0.0) + clock() - masked
    return resized, mask_u8


def _decode(path: Path, kind: str) -> np.ndarray:
    try:
        return read_grayscale(path)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(
            f"cannot decode {kind} {path}: {exc} (replace or remove the file, then run again)"
        ) from None


def manifest_key(split: Split, size: int, interpolation: str = "bicubic") -> str:
    """Identity of what the store would hold: paths, file sizes and times, image size."""
    head = f"v{STORE_VERSION}|{size}|{interpolation}|{split.root.resolve()}"
    digest = hashlib.sha256(head.encode())
    for record in split.records:
        for rel in (record.image, record.scan_mask):
            if rel is None:
                digest.update(b"|-")
                continue
            try:
                stat = (split.root / rel).stat()
                digest.update(f"|{rel}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"|{rel}|missing".encode())
    return digest.hexdigest()


def store_dir(
    cache_root: Path, dataset: str, split: str, size: int, interpolation: str = "bicubic"
) -> Path:
    return Path(cache_root) / "images" / dataset / f"{split}-{size}px-{interpolation}"


def open_store(
    split: Split,
    dataset: str,
    size: int,
    cache_root: Path,
    *,
    interpolation: str = "bicubic",
    workers: int = 0,
    progress: bool = True,
) -> ImageStore:
    """Open the split's store, building it first when absent or stale.

    `interpolation`: the resize filter (an input spec's name: nearest, bilinear, bicubic, area).
    `workers`: decoding processes (0 = one per usable CPU, or 1 for a small split).
    `build_stats` of the store returned is set when this call built it.
    """
    if interpolation not in PIL_FILTERS:
        raise ValueError(f"interpolation must be one of {sorted(PIL_FILTERS)}")
    root = store_dir(cache_root, dataset, split.name, size, interpolation)
    key = manifest_key(split, size, interpolation)
    store = _try_open(root, key)
    if store is not None and not _content_intact(store):
        sys.stderr.write(
            f"warning: image store {root} does not match its content hash (changed or damaged "
            "on disk); rebuilding it\n"
        )
        store = None
    if store is not None:
        return store
    stats = _build(root, split, dataset, (size, interpolation), key, workers, progress)
    store = _try_open(root, key)
    assert store is not None, "a freshly built image store must open"
    _VERIFIED[root] = _identity(store.root)
    return dataclasses.replace(store, build_stats=stats)


def _identity(root: Path) -> tuple:
    stats = [(root / n).stat() for n in ("images.u8", "masks.u8")]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def _content_intact(store: ImageStore) -> bool:
    """Whether the store's bytes hash to `meta.json`'s content hash; once per process and
    store files (read with plain reads: a damaged file is an answer, not a crash)."""
    identity = _identity(store.root)
    if _VERIFIED.get(store.root) == identity:
        return True
    digest = hashlib.sha256()
    try:
        for name in ("images.u8", "masks.u8"):
            with (store.root / name).open("rb") as handle:
                for chunk in iter(lambda: handle.read(8 << 20), b""):
                    digest.update(chunk)
    except OSError:
        return False
    if digest.hexdigest() != store.meta.get("content_sha256"):
        return False
    _VERIFIED[store.root] = identity
    return True


def _try_open(root: Path, key: str) -> ImageStore | None:
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("manifest_key") != key:
        return None
    shape = (meta["count"], meta["size"], meta["size"])
    expected_bytes = int(np.prod(shape))
    paths = [root / "images.u8", root / "masks.u8"]
    if any(not p.is_file() or p.stat().st_size != expected_bytes for p in paths):
        return None
    images = np.memmap(paths[0], dtype=np.uint8, mode="r", shape=shape)
    masks = np.memmap(paths[1], dtype=np.uint8, mode="r", shape=shape)
    return ImageStore(root, meta, images, masks)


def _build(
    root: Path,
    split: Split,
    dataset: str,
    resize: tuple[int, str],
    key: str,
    workers: int,
    progress: bool,
) -> dict[str, float]:
    started = time.perf_counter()
    size, interpolation = resize
    count = len(split)
    shape = (count, size, size)
    tmp = root.parent / f".{root.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    with _cache_errors(root.parent):
        root.parent.mkdir(parents=True, exist_ok=True)
        for stale in stale_temp_dirs(root.parent):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        _check_free_space(root.parent, 2 * count * size * size)
        tmp.mkdir()
    try:
        with _cache_errors(root.parent):
            img_map = _reserved_map(tmp / "images.u8", shape)
            mask_map = _reserved_map(tmp / "masks.u8", shape)
        bar = tqdm(
            total=count,
            desc=f"decode {dataset}/{split.name}",
            unit="img",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        with bar:
            stats = store_build.fill(
                decode_record,
                split.root,
                split.records,
                (tmp / "images.u8", tmp / "masks.u8"),
                resize,
                _worker_count(workers, count),
                bar.update,
            )
        flushing = time.process_time()
        img_map.flush()
        mask_map.flush()
        hashing = time.process_time()
        digest = hashlib.sha256()
        digest.update(memoryview(img_map).cast("B"))
        digest.update(memoryview(mask_map).cast("B"))
        del img_map, mask_map
        stats["write_s"] += hashing - flushing
        stats["hash_s"] = time.process_time() - hashing
        meta = {
            "store_version": STORE_VERSION,
            "dataset": dataset,
            "split": split.name,
            "size": size,
            "interpolation": interpolation,
            "count": count,
            "manifest_key": key,
            "content_sha256": digest.hexdigest(),
            "ids": split.ids,
        }
        with _cache_errors(root.parent):
            (tmp / "meta.json").write_text(json.dumps(meta) + "\n")
            _swap_into_place(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    return {
        "images": count,
        "seconds": seconds,
        "images_per_s": count / seconds if seconds > 0 else 0.0,
        **stats,
    }


@contextmanager
def _cache_errors(folder: Path) -> Iterator[None]:
    """An OSError while writing the store (a cache path that is a file, read-only, full) as one
    UserError line naming the folder and the fix."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise UserError(
            f"cannot write the image store in {folder}: {exc.strerror or exc}{where}; point "
            "--cache (or UBENCH_CACHE) at a writable folder with free space"
        ) from None


def _check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + _SPACE_MARGIN:
        raise UserError(
            f"not enough free space for an image store in {folder}: it needs "
            f"{(needed + _SPACE_MARGIN) / 1e6:.0f} MB, {free / 1e6:.0f} MB are free; free some "
            "(`ubench cache rm`) or point --cache (or UBENCH_CACHE) elsewhere"
        )


def _reserved_map(path: Path, shape: tuple[int, int, int]) -> np.memmap:
    """A writable memory map whose disk blocks are reserved first: writing into a sparse map on
    a full disk kills the process (SIGBUS) instead of raising."""
    nbytes = int(np.prod(shape))
    with path.open("wb") as handle:
        if nbytes and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(handle.fileno(), 0, nbytes)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                handle.truncate(nbytes)
        else:
            handle.truncate(nbytes)
    return np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)


def stale_temp_dirs(folder: Path, now: float | None = None) -> list[Path]:
    """The temporary build folders in `folder` that no running process owns: this host's whose
    process has ended, and any older than STALE_AFTER_S (another host's, or unnamed)."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    stale = []
    try:
        children = list(Path(folder).iterdir())
    except OSError:
        return []
    for child in children:
        match = _TEMP_NAME.match(child.name)
        if match is None or not child.is_dir():
            continue
        pid = int(match["pid"])
        if match["host"] == host:
            if pid != os.getpid() and not _alive(pid):
                stale.append(child)
            continue
        try:
            age = now - child.stat().st_mtime
        except OSError:
            continue
        if age > STALE_AFTER_S:
            stale.append(child)
    return stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists, owned by someone else
    return True


def _swap_into_place(tmp: Path, root: Path) -> None:
    if root.exists():
        old = root.parent / f".{root.name}.old-{socket.gethostname()}-{os.getpid()}"
        os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, root)


def _worker_count(requested: int, count: int) -> int:
    if requested > 0:
        return requested
    if count < _PARALLEL_MIN_IMAGES:
        return 1
    return store_build.usable_cpus()
