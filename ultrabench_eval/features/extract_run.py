"""`ubench extract`: features of models x tasks x splits (x views) into the cache, nothing else.

Alone it runs in one process; under `torchrun --nproc-per-node N -m ultrabench_eval extract`
every rank takes a block of each split (see `ultrabench_eval.features.distributed`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from annotated_types import MinLen

from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.core.validation import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_WORKERS,
    BatchSize,
    DeviceName,
    Hint,
    ImageSide,
    Workers,
)
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import open_store
from ultrabench_eval.data.task_card import SPLITS, Split
from ultrabench_eval.features import distributed
from ultrabench_eval.features.extract import cached_features
from ultrabench_eval.features.extract_tokens import cached_tokens
from ultrabench_eval.features.stores import store_resize
from ultrabench_eval.models.adapter import TorchAdapter
from ultrabench_eval.models.factory import make_adapter


@dataclass
class ExtractConfig:
    """What `ubench extract` is asked for; each field's limits are declared here and checked
    by `protocols.config.validate`."""

    models: Annotated[list[str], MinLen(1), Hint("see `ubench models`")]
    tasks: Annotated[list[str], MinLen(1), Hint("see `ubench tasks`")]
    data_root: Path
    cache_root: Path
    weights: str | Path | None = None
    splits: tuple[Split, ...] = SPLITS
    # clean and/or <corruption>:<severity>, checked by corruptions.views.View.parse
    views: list[str] = field(default_factory=lambda: ["clean"])
    image_size: ImageSide | None = None
    batch_size: BatchSize = DEFAULT_BATCH_SIZE
    device: DeviceName = DEFAULT_DEVICE
    workers: Workers = DEFAULT_WORKERS
    compile: bool = False
    channels_last: bool = False
    progress: bool = True
    allow_overlap: bool = False  # see BenchConfig.allow_overlap


def run_extraction(config: ExtractConfig, log: Callable[[str], None] = print) -> list[dict]:
    """Extract (or find in the cache) every feature file asked for; one row per file."""
    if config.weights is not None and len(config.models) != 1:
        raise UserError("--weights applies to one model: pass a single --model with it")
    unknown = [s for s in config.splits if s not in SPLITS]
    if unknown:
        raise UserError(f"unknown split(s) {', '.join(unknown)} (use {', '.join(SPLITS)})")
    views = [View.parse(v) for v in config.views]
    adapters = [make_adapter(name) for name in config.models]
    overlap = "allow" if config.allow_overlap else "refuse"
    cards = [TASKS.get(name) for name in config.tasks]
    datasets = [
        open_dataset(c, config.data_root, overlap=overlap, digest_cache=config.cache_root)
        for c in cards
    ]
    ranks = distributed.ranks_from_env()
    device = distributed.start(ranks, config.device) if ranks else resolve_device(config.device)
    rows = []
    try:
        for adapter in adapters:
            adapter.load(config.weights).to(device)
            if isinstance(adapter, TorchAdapter) and adapter.model is not None:
                adapter.optimise(compile=config.compile, channels_last=config.channels_last)
            size, interpolation = store_resize(adapter, config.image_size)
            for dataset in datasets:
                for split_name in config.splits:
                    split = dataset.splits[split_name]
                    # rank 0 decodes; the others open what it wrote
                    if ranks and not ranks.is_main:
                        distributed.barrier()
                    store = open_store(
                        split,
                        dataset.card.dataset,
                        size,
                        config.cache_root,
                        interpolation=interpolation,
                        workers=config.workers,
                        progress=config.progress and not ranks,
                    )
                    if ranks and ranks.is_main:
                        distributed.barrier()
                    for view in views:
                        started = time.perf_counter()
                        if dataset.card.is_segmentation:
                            # a segmentation task's probe reads patch tokens, not pooled vectors
                            if ranks:
                                raise UserError(
                                    f"task {dataset.card.name} is a segmentation task: its "
                                    "patch tokens are extracted by one process (run `ubench "
                                    "extract` without torchrun for it)"
                                )
                            tokens = cached_tokens(
                                adapter,
                                dataset.card.name,
                                split_name,
                                store,
                                config.cache_root,
                                batch_size=config.batch_size,
                                view=view,
                                log=log,
                            )
                            dims = {"tokens": list(tokens.tokens.shape[1:])}
                            from_cache = tokens.from_cache
                        elif ranks:
                            found = distributed.sharded_features(
                                adapter,
                                dataset.card.name,
                                split_name,
                                store,
                                config.cache_root,
                                ranks,
                                batch_size=config.batch_size,
                                view=view,
                            )
                        else:
                            found = cached_features(
                                adapter,
                                dataset.card.name,
                                split_name,
                                store,
                                config.cache_root,
                                batch_size=config.batch_size,
                                view=view,
                            )
                        if not dataset.card.is_segmentation:
                            dims = {k: int(v.shape[1]) for k, v in found.features.items()}
                            from_cache = found.from_cache
                        seconds = time.perf_counter() - started
                        row = {
                            "model": adapter.name,
                            "task": dataset.card.name,
                            "split": split_name,
                            "view": view.name,
                            "images": len(store),
                            "dims": dims,
                            "cached": from_cache,
                            "seconds": round(seconds, 3),
                        }
                        rows.append(row)
                        if ranks is None or ranks.is_main:
                            how = "cached" if from_cache else f"extracted in {seconds:.1f} s"
                            log(
                                f"{adapter.name} | {dataset.card.name}/{split_name} | "
                                f"{view.name} | {len(store)} images | {how}"
                            )
    finally:
        if ranks:
            distributed.stop()
    return rows
