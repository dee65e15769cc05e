"""The image store: each split decoded once into memory-mapped grayscale uint8 arrays.

Layout under `<cache>/images/<dataset>/<split>-<size>px-<interpolation>/`: `images.u8`
[N, S, S], `masks.u8` [N, S, S] (scan masks, 0/1) and `meta.json`. The resize from the original
image is done here, once, with PIL and the model's interpolation, as a hand-written PIL loop
would do it; a model whose input size is the store's then sees exactly those pixels. The folder
is built beside its final place and renamed into it, so a store is either whole or absent. It
is rebuilt when the split's manifest (image and mask paths, file sizes and modification times)
changes, and when its bytes no longer match the content hash in `meta.json` (checked once per
process when opened: one read of the store, 1-2 s per GB).

A build first checks the free space (N x S x S x 2 bytes) and reserves it, so a full disk is one
error line rather than a crash while writing the memory map; a build's temporary folder is
`.<name>.tmp-<host>-<pid>`, and those a killed run left behind are removed by the next build
(see `stale_temp_dirs`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ultrabench_eval.core.errors import UserError
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
_CHUNK = 32
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
    root: Path, record: Record, size: int, interpolation: str = "bicubic"
) -> tuple[np.ndarray, np.ndarray]:
    """One record -> (image uint8 [S, S], scan mask uint8 0/1 [S, S])."""
    path = root / record.image
    image = _decode(path, "image")
    if record.scan_mask is not None:
        mask = _decode(root / record.scan_mask, "scan mask") > 0
        if mask.shape != image.shape:
            raise UserError(
                f"scan mask {root / record.scan_mask} is {mask.shape[::-1]} pixels, the image "
                f"{record.image} {image.shape[::-1]} (make them the same size, then run again)"
            )
    else:
        mask = derive_scan_mask(image)
    mask_u8 = resize_gray(mask.astype(np.uint8), size, Image.Resampling.NEAREST)
    return resize_gray(image, size, PIL_FILTERS[interpolation]), mask_u8


def _decode(path: Path, kind: str) -> np.ndarray:
    try:
        return read_grayscale(path)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(
            f"cannot decode {kind} {path}: {exc} (replace or remove the file, then run again)"
        ) from None


def _decode_chunk(args: tuple[Path, list[Record], int, str]) -> tuple[np.ndarray, np.ndarray]:
    root, records, size, interpolation = args
    pairs = [decode_record(root, r, size, interpolation) for r in records]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


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
    `workers`: decoding processes (0 = choose from the CPU count and the split size).
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
    _build(root, split, dataset, (size, interpolation), key, workers, progress)
    store = _try_open(root, key)
    assert store is not None, "a freshly built image store must open"
    _VERIFIED[root] = _identity(store.root)
    return store


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
) -> None:
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
        chunks = [
            (split.root, list(split.records[i : i + _CHUNK]), size, interpolation)
            for i in range(0, count, _CHUNK)
        ]
        bar = tqdm(
            total=count,
            desc=f"decode {dataset}/{split.name}",
            unit="img",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        start = 0
        with bar:
            for imgs, masks in _map_chunks(chunks, _worker_count(workers, count)):
                img_map[start : start + len(imgs)] = imgs
                mask_map[start : start + len(imgs)] = masks
                start += len(imgs)
                bar.update(len(imgs))
        img_map.flush()
        mask_map.flush()
        digest = hashlib.sha256()
        digest.update(memoryview(img_map).cast("B"))
        digest.update(memoryview(mask_map).cast("B"))
        del img_map, mask_map
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
    return max(1, min(8, os.cpu_count() or 1))


def _map_chunks(chunks: list, workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if workers <= 1 or len(chunks) <= 1:
        yield from map(_decode_chunk, chunks)
        return
    # spawn: workers never inherit torch's thread pools or CUDA state from the parent.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(_decode_chunk, chunks)
