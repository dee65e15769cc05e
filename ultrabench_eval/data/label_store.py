"""Segmentation label masks, decoded once into memory-mapped arrays beside the image store.

Layout under `<cache>/images/<dataset>/<split>-labels-<size>px/`: `labels.u8` [N, E, E] (each
pixel's class index, mapped from the mask file's pixel values by the card's `mask_values`),
`valid.u8` [N, E, E] (1 inside the scan mask: the only pixels a dense probe is trained and scored
on) and `meta.json`. E is the task's evaluation resolution (its card's `eval_size`, 224 by
default), the same for every model whatever its input size, so Dice and IoU are measured on the
same pixels for all.

Both masks are resized with nearest neighbour (a class index has no in-between values); the scan
mask is the image store's own rule (the record's file, else derived from the image), so a
probe's ignore region is exactly what the corruptions treat as the scan. The store is built in a
temporary folder beside its place and renamed into it (whole or absent), and rebuilt when the
split's manifest (paths, sizes, times of images, scan and label masks), the card's pixel values
or the size change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import Split
from ultrabench_eval.data.image_store import (
    _cache_errors,
    _check_free_space,
    _swap_into_place,
    decode_record,
    manifest_key,
    resize_gray,
    stale_temp_dirs,
)
from ultrabench_eval.data.task_card import TaskCard

LABEL_STORE_VERSION = "1"
_FILES = ("labels.u8", "valid.u8")


@dataclass(frozen=True)
class LabelStore:
    root: Path
    meta: dict
    labels: np.ndarray  # uint8 [N, E, E] class indices
    valid: np.ndarray  # uint8 [N, E, E] 1 inside the scan

    @property
    def ids(self) -> list[str]:
        return list(self.meta["ids"])

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def content_hash(self) -> str:
        return str(self.meta["content_sha256"])

    def __len__(self) -> int:
        return int(self.meta["count"])


def label_store_dir(cache_root: Path, dataset: str, split: str, size: int) -> Path:
    return Path(cache_root) / "images" / dataset / f"{split}-labels-{size}px"


def open_label_store(
    split: Split,
    card: TaskCard,
    cache_root: Path,
    *,
    size: int | None = None,
    progress: bool = True,
) -> LabelStore:
    """The split's label masks at `size` x `size` (default: the card's evaluation size), built
    first when absent or stale."""
    if not card.is_segmentation:
        raise ValueError(f"task {card.name} is not a segmentation task")
    size = size or card.evaluation_size
    root = label_store_dir(cache_root, card.dataset, split.name, size)
    key = _manifest_key(split, card, size)
    store = _try_open(root, key)
    if store is None:
        _build(root, split, card, size, key, progress)
        store = _try_open(root, key)
        assert store is not None, "a freshly built label store must open"
    return store


def decode_label_mask(split_root: Path, rel: str, card: TaskCard) -> np.ndarray:
    """One mask file -> class indices uint8 [H, W]; a pixel value the card does not list is one
    error line naming the file, the values and the fix."""
    path = split_root / rel
    mask = _decode_raw(path)
    lookup = np.full(256, 255, dtype=np.uint8)
    for index, value in enumerate(card.pixel_values):
        lookup[value] = index
    classes = lookup[mask]
    if (classes == 255).any():
        unknown = sorted(int(v) for v in np.unique(mask[classes == 255]))
        shown = ", ".join(map(str, unknown[:8])) + (" ..." if len(unknown) > 8 else "")
        raise UserError(
            f"label mask {path} has pixel value(s) {shown} that task '{card.name}' does not "
            f"list (mask_values {list(card.pixel_values)} for classes {', '.join(card.classes)}): "
            "correct `mask_values` in the card, or the mask file"
        )
    return classes


def _decode_raw(path: Path) -> np.ndarray:
    """A mask file's pixel values as they are stored (a palette image's indices, not its
    colours; an RGB mask whose channels agree, one channel): uint8 [H, W]."""
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(
            f"cannot decode label mask {path}: {exc} (replace or remove the file, then run again)"
        ) from None
    if array.ndim == 3:
        # an alpha channel (LA, RGBA) must be opaque: annotation tools that paint the class in
        # the alpha would otherwise be read as one class everywhere
        if array.shape[2] in (2, 4):
            alpha = array[..., -1]
            if not (alpha == alpha.max()).all():
                raise UserError(
                    f"label mask {path} has a transparent alpha channel: write the class values "
                    "as the pixels of a grayscale or palette PNG, not as transparency"
                )
            array = array[..., :-1]
        if not (array == array[..., :1]).all():
            raise UserError(
                f"label mask {path} is a colour image whose channels differ: write one class "
                "value per pixel (a grayscale or palette PNG)"
            )
        array = array[..., 0]
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer) and not (array == np.rint(array)).all():
        raise UserError(
            f"label mask {path} holds fractional values (a soft mask): write whole class "
            "values, one per pixel"
        )
    low, high = array.min(initial=0), array.max(initial=0)
    if low < 0 or high > 255:
        raise UserError(
            f"label mask {path} has values outside 0-255 (from {low} to {high}): write class "
            "values as 8-bit pixels"
        )
    return array.astype(np.uint8)


def _label_and_valid(split: Split, index: int, card: TaskCard, size: int):
    record = split.records[index]
    assert record.mask is not None, "a segmentation record has a mask (checked on reading)"
    classes = decode_label_mask(split.root, record.mask, card)
    _, valid = decode_record(split.root, record, size)
    image_shape = _image_shape(split.root / record.image)
    if classes.shape != image_shape:
        raise UserError(
            f"label mask {split.root / record.mask} is {classes.shape[::-1]} pixels, the image "
            f"{record.image} {image_shape[::-1]} (make them the same size, then run again)"
        )
    labels = resize_gray(classes, size, Image.Resampling.NEAREST)
    return labels, valid


def _image_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size[1], img.size[0]


def _manifest_key(split: Split, card: TaskCard, size: int) -> str:
    """The image store's manifest at this size (images and scan masks), the card's pixel
    values, and each label mask's path, size and time."""
    head = f"v{LABEL_STORE_VERSION}|{list(card.pixel_values)}|{manifest_key(split, size)}"
    digest = hashlib.sha256(head.encode())
    for record in split.records:
        try:
            stat = (split.root / str(record.mask)).stat()
            digest.update(f"|{record.mask}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"|{record.mask}|missing".encode())
    return digest.hexdigest()


def _try_open(root: Path, key: str) -> LabelStore | None:
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("manifest_key") != key:
        return None
    shape = (meta["count"], meta["size"], meta["size"])
    paths = [root / name for name in _FILES]
    if any(not p.is_file() or p.stat().st_size != int(np.prod(shape)) for p in paths):
        return None
    labels, valid = (np.memmap(p, dtype=np.uint8, mode="r", shape=shape) for p in paths)
    return LabelStore(root, meta, labels, valid)


def _build(root: Path, split: Split, card: TaskCard, size: int, key: str, progress: bool) -> None:
    count = len(split)
    tmp = root.parent / f".{root.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    with _cache_errors(root.parent):
        root.parent.mkdir(parents=True, exist_ok=True)
        for stale in stale_temp_dirs(root.parent):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        _check_free_space(root.parent, 2 * count * size * size)
        tmp.mkdir()
    try:
        labels = np.empty((count, size, size), dtype=np.uint8)
        valid = np.empty((count, size, size), dtype=np.uint8)
        bar = tqdm(
            range(count),
            desc=f"masks {card.dataset}/{split.name}",
            unit="img",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        for index in bar:
            labels[index], valid[index] = _label_and_valid(split, index, card, size)
        digest = hashlib.sha256()
        with _cache_errors(root.parent):
            for name, array in zip(_FILES, (labels, valid), strict=True):
                (tmp / name).write_bytes(array.tobytes())
                digest.update(array.tobytes())
            meta = {
                "version": LABEL_STORE_VERSION,
                "manifest_key": key,
                "count": count,
                "size": size,
                "classes": list(card.classes),
                "mask_values": list(card.pixel_values),
                "ids": split.ids,
                "content_sha256": digest.hexdigest(),
                "pixels_per_class": np.bincount(
                    labels[valid.astype(bool)], minlength=card.num_classes
                ).tolist(),
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            _swap_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
