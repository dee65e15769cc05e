"""Feature extraction: image store -> (view) -> adapter.embed on the device -> feature cache.

Extraction checkpoints its progress (`<view>.partial` in the cache) every so often, so a killed
run resumes from the batches already done; the final file replaces the partial one at the end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ultrabench_eval
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.image_store import ImageStore
from ultrabench_eval.data.loader import device_batches
from ultrabench_eval.features import feature_cache
from ultrabench_eval.features.cache_identity import (
    autocast_dtype,
    extraction_identity,
    feature_fingerprint,
    precision_for,
    view_code_digest,
)
from ultrabench_eval.models.adapter import Adapter

CHECKPOINT_SECONDS = 60.0


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 on GPUs that have it, fp16 on older ones, full fp32 on CPU (`precision_for`)."""
    dtype = autocast_dtype(precision_for(device))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def iter_features(
    adapter: Adapter,
    store: ImageStore,
    indices: np.ndarray | None = None,
    *,
    batch_size: int = 64,
    view: View | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """{pooling: float32 [b, D]} per batch, on the device, for the images at `indices`."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    indices = np.arange(len(store)) if indices is None else np.asarray(indices)
    corrupt = view is not None and not view.is_clean
    ids = store.ids
    device = adapter.device
    for batch in device_batches(store, indices, batch_size, device, with_masks=corrupt):
        images = batch.images
        if corrupt:
            images = view.apply(images, batch.masks, [ids[i] for i in batch.positions])
        with autocast_for(device):
            out = adapter.embed(images)
        yield {name: value.float() for name, value in out.items()}


def extract(
    adapter: Adapter,
    store: ImageStore,
    indices: np.ndarray | None = None,
    *,
    batch_size: int = 64,
    view: View | None = None,
) -> dict[str, np.ndarray]:
    """Embed the images at `indices` (all of them by default), in order."""
    parts: dict[str, list[torch.Tensor]] = {}
    for out in iter_features(adapter, store, indices, batch_size=batch_size, view=view):
        for name, value in out.items():
            parts.setdefault(name, []).append(value)
    return {name: torch.cat(values).cpu().numpy() for name, values in parts.items()}


@dataclass(frozen=True)
class FeatureSet:
    features: dict[str, np.ndarray]
    from_cache: bool
    seconds: float
    device: str | None = None  # where the features were computed (a cached file's sidecar)


def feature_key(adapter: Adapter, task: str, split: str, view: View) -> feature_cache.CacheKey:
    """The cache key of a feature file: see `ultrabench_eval.features.cache_identity`."""
    return feature_cache.CacheKey(
        adapter.name, feature_fingerprint(adapter), task, split, view.name, view_code_digest(view)
    )


def cached_features(
    adapter: Adapter,
    task: str,
    split: str,
    store: ImageStore,
    cache_root: Path,
    *,
    batch_size: int = 64,
    view: View | None = None,
    shard: tuple[int, int] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> FeatureSet:
    """Features from the cache when they match the store exactly, else extracted and cached.

    With `shard=(rank, world)` only that rank's contiguous block of images is computed and
    stored as a shard file (see `ultrabench_eval.features.distributed`).
    """
    view = view or View.clean()
    key = feature_key(adapter, task, split, view)
    indices = np.arange(len(store))
    part = ""
    if shard is not None:
        indices = np.array_split(indices, shard[1])[shard[0]]
        part = feature_cache.shard_part(*shard)
    ids = [store.ids[i] for i in indices]
    started = time.perf_counter()
    hit = feature_cache.load_entry(key, cache_root, ids, store.content_hash, part=part)
    if hit is not None:
        features, sidecar = hit
        return FeatureSet(features, True, time.perf_counter() - started, sidecar.get("device"))
    partial_part = f"{part}.{feature_cache.PARTIAL}" if part else feature_cache.PARTIAL
    done = feature_cache.load_partial(key, cache_root, ids, store.content_hash, partial_part)

    def checkpoint(features: dict[str, np.ndarray]) -> None:
        feature_cache.save(key, cache_root, features, ids, store.content_hash, part=partial_part)

    features = _extract_resumable(
        adapter, store, indices, done, batch_size, view, checkpoint, checkpoint_seconds
    )
    seconds = time.perf_counter() - started
    extra = {
        "seconds": round(seconds, 3),
        "device": str(adapter.device),
        "batch_size": batch_size,
        "resumed_rows": 0 if done is None else _rows(done),
        "versions": versions(),
        "key": extraction_identity(adapter),
    }
    feature_cache.save(key, cache_root, features, ids, store.content_hash, extra, part=part)
    feature_cache.remove(key, cache_root, partial_part)
    return FeatureSet(features, False, seconds, str(adapter.device))


def _extract_resumable(
    adapter: Adapter,
    store: ImageStore,
    indices: np.ndarray,
    done: dict[str, np.ndarray] | None,
    batch_size: int,
    view: View,
    checkpoint: Callable[[dict[str, np.ndarray]], None],
    every: float,
) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {k: [v] for k, v in (done or {}).items()}
    pending: dict[str, list[torch.Tensor]] = {}
    last = time.perf_counter()
    start = 0 if done is None else _rows(done)

    def flush() -> dict[str, np.ndarray]:
        for name, values in pending.items():
            parts.setdefault(name, []).append(torch.cat(values).cpu().numpy())
        pending.clear()
        return {name: np.concatenate(values) for name, values in parts.items()}

    remaining = indices[start:]
    for out in iter_features(adapter, store, remaining, batch_size=batch_size, view=view):
        for name, value in out.items():
            pending.setdefault(name, []).append(value)
        if time.perf_counter() - last >= every:
            checkpoint(flush())
            last = time.perf_counter()
    return flush()


def _rows(features: dict[str, np.ndarray]) -> int:
    return int(next(iter(features.values())).shape[0])


def versions() -> dict[str, str]:
    import timm

    return {
        "ultrabench_eval": ultrabench_eval.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
    }
