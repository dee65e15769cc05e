"""Several processes extracting one model's features: `torchrun --nproc-per-node N -m
ultrabench_eval extract ...`.

Each rank embeds its contiguous block of every split and writes it as a shard file; no rank waits
on another except at the end of a split, where rank 0 merges the shards, in order, into the file
a single process would have written. Image stores are built by rank 0 before the others open
them, so no two processes decode the same split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ultrabench_eval.core.device import rank_device, resolve_device
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.image_store import ImageStore
from ultrabench_eval.features import feature_cache
from ultrabench_eval.features.extract import FeatureSet, cached_features, feature_key
from ultrabench_eval.models.adapter import Adapter


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks_from_env() -> Ranks | None:
    """The process's place in a torchrun job, or None when it runs alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(ranks: Ranks, device_name: str) -> torch.device:
    """Join the process group; each rank gets its own GPU when there are GPUs (NCCL), else the
    CPU (gloo)."""
    device = rank_device(resolve_device(device_name), ranks.rank, ranks.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def sharded_features(
    adapter: Adapter,
    task: str,
    split: str,
    store: ImageStore,
    cache_root: Path,
    ranks: Ranks,
    *,
    batch_size: int = 64,
    view: View | None = None,
) -> FeatureSet:
    """This rank's shard, then (rank 0) the merge; every rank returns the merged features."""
    view = view or View.clean()
    key = feature_key(adapter, task, split, view)
    whole = feature_cache.load_entry(key, cache_root, store.ids, store.content_hash)
    if whole is not None:
        return FeatureSet(whole[0], True, 0.0, whole[1].get("device"))
    own = cached_features(
        adapter,
        task,
        split,
        store,
        cache_root,
        batch_size=batch_size,
        view=view,
        shard=(ranks.rank, ranks.world),
    )
    barrier()
    if ranks.is_main:
        merge_shards(key, cache_root, store, ranks.world, device=str(adapter.device))
    barrier()
    merged = feature_cache.load(key, cache_root, store.ids, store.content_hash)
    if merged is None:
        raise RuntimeError(f"rank {ranks.rank}: the merged features of {task}/{split} are missing")
    return FeatureSet(merged, own.from_cache, own.seconds, own.device)


def merge_shards(
    key: feature_cache.CacheKey,
    cache_root: Path,
    store: ImageStore,
    world: int,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """Concatenate the `world` shard files of a split, check them, write the final file."""
    blocks = np.array_split(np.arange(len(store)), world)
    parts = []
    for rank, block in enumerate(blocks):
        ids = [store.ids[i] for i in block]
        part = feature_cache.shard_part(rank, world)
        shard = feature_cache.load(key, cache_root, ids, store.content_hash, part=part)
        if shard is None:
            raise RuntimeError(f"shard {rank} of {world} for {key.task}/{key.split} is missing")
        parts.append(shard)
    merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    feature_cache.save(
        key,
        cache_root,
        merged,
        store.ids,
        store.content_hash,
        extra={"merged_shards": world, "device": device},
    )
    for rank in range(world):
        feature_cache.remove(key, cache_root, feature_cache.shard_part(rank, world))
    return merged
