"""Feature extraction: image store -> (view) -> adapter.embed -> feature cache."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch

import ultrabench_eval
from ultrabench_eval import feature_cache
from ultrabench_eval.adapter import Adapter
from ultrabench_eval.errors import UserError
from ultrabench_eval.image_store import ImageStore
from ultrabench_eval.views import View


def resolve_device(name: str | None = "auto") -> torch.device:
    """`auto` picks the GPU when there is one; asking for one that is not there is an error."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but no CUDA GPU is visible (use --device cpu)")
    return device


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 on GPUs that have it, fp16 on older ones, full fp32 on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def extract(
    adapter: Adapter,
    store: ImageStore,
    *,
    batch_size: int = 64,
    view: View | None = None,
) -> dict[str, np.ndarray]:
    """Embed every image of the store, in order: {pooling: float32 [N, D]}."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    device = adapter.device
    ids = store.ids
    chunks: dict[str, list[np.ndarray]] = {}
    for start, images, masks in store.batches(batch_size):
        # np.array copies out of the read-only memory map into memory torch may own.
        batch = torch.from_numpy(np.array(images)).unsqueeze(1)
        batch = batch.to(device, non_blocking=True)
        if view is not None and not view.is_clean:
            mask_batch = torch.from_numpy(np.array(masks)).unsqueeze(1).to(device)
            batch = view.apply(batch, mask_batch, ids[start : start + len(images)])
        with autocast_for(device):
            out = adapter.embed(batch)
        for name, value in out.items():
            chunks.setdefault(name, []).append(value.float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


@dataclass(frozen=True)
class FeatureSet:
    features: dict[str, np.ndarray]
    from_cache: bool
    seconds: float


def cached_features(
    adapter: Adapter,
    task: str,
    split: str,
    store: ImageStore,
    cache_root,
    *,
    batch_size: int = 64,
    view: View | None = None,
) -> FeatureSet:
    """Features from the cache when they match the store exactly, else extracted and cached."""
    view = view or View.clean()
    key = feature_cache.CacheKey(adapter.name, adapter.fingerprint(), task, split, view.name)
    started = time.perf_counter()
    hit = feature_cache.load(key, cache_root, store.ids, store.content_hash)
    if hit is not None:
        return FeatureSet(hit, True, time.perf_counter() - started)
    features = extract(adapter, store, batch_size=batch_size, view=view)
    seconds = time.perf_counter() - started
    feature_cache.save(
        key,
        cache_root,
        features,
        store.ids,
        store.content_hash,
        extra={
            "seconds": round(seconds, 3),
            "device": str(adapter.device),
            "batch_size": batch_size,
            "versions": versions(),
        },
    )
    return FeatureSet(features, False, seconds)


def versions() -> dict[str, str]:
    import numpy
    import timm

    return {
        "ultrabench_eval": ultrabench_eval.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
    }
