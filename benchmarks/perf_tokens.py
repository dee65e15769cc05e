"""`make perf`, the patch-token half: how fast tokens go into the token cache, and how large it
grows.

For each model (`random-vit-s`, a ViT-S/16 at 224 px with random weights: speed does not depend
on them; and `pixels`, the weight-free baseline whose forward pass costs next to nothing, so
its figure is the cache's own write speed) over the train split of the generated suite:

- tokens alone: images per second of `iter_tokens` (store -> device -> tokens on the CPU as
  float32), nothing written (the better of a pass before and one after the extraction);
- the cold extraction into the cache (`cached_tokens`, float16): images per second, MB
  written, MB/s, and that rate as a fraction of tokens alone;
- the warm re-read as a new process does it (the file's checksum verified once): seconds and
  GB/s of tokens.

For `pixels` (2 kB of tokens per image) the cold figure is mostly the fixed cost of an entry
(its key, lock, reserved file, flush and sidecars). How fast the cache takes rows of a realistic
size with no model in front (ViT-B/16 rows, `--write-images` of them) is measured apart: the
most a fast GPU extraction could write.

And, computed rather than measured, the cache size of a ViT-B/16 at 224 px (196 tokens x 768
x 2 bytes of float16 per image) for the split sizes of every task card in `tasks/`.
Writes `results/perf/tokens-<device>.json`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.perf import machine, write_figures
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import ImageStore, open_store
from ultrabench_eval.data.synth import write_task
from ultrabench_eval.data.task_card import read_card
from ultrabench_eval.features import token_cache
from ultrabench_eval.features.extract_tokens import cached_tokens, iter_tokens
from ultrabench_eval.features.stores import store_resize
from ultrabench_eval.models.adapter import Adapter, CheckpointAdapter
from ultrabench_eval.models.factory import make_adapter

MODELS = ("random-vit-s", "pixels")
TASK = "synth-view"
TASK_CARDS = Path(__file__).resolve().parents[1] / "tasks"
# A ViT-B/16 at 224 px: a 14 x 14 grid of 768-d tokens, stored as float16.
VIT_B16_TOKENS, VIT_B16_DIM, FLOAT16_BYTES = 196, 768, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_tokens", description=__doc__)
    parser.add_argument("--out", default="results/perf", help="folder for the JSON")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--images", type=int, default=300, help="images in the generated task")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--write-images", type=int, default=1000, help="ViT-B/16-sized rows of the write test"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's; 1 on a CPU shared with other work, where "
        "more threads wait on each other)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    models = [name for name in args.models.split(",") if name]
    with tempfile.TemporaryDirectory(prefix="ubench-perf-tokens-") as scratch:
        figures = measure(models, device, Path(scratch), args.images, args.batch_size)
        figures["cache_write_vit_b16_rows"] = write_rate(
            Path(scratch) / "write", args.write_images, args.batch_size
        )
    figures["cache_size_vit_b16_224px"] = cache_size_table(TASK_CARDS)
    write_figures(figures, args.out, "tokens", device)
    return 0


def measure(
    models: list[str], device: torch.device, scratch: Path, num_images: int, batch_size: int
) -> dict[str, Any]:
    write_task(TASK, scratch / "data", num_images=num_images, workers=2)
    card = TASKS.get(TASK)
    split = open_dataset(card, scratch / "data").splits["train"]
    results = {}
    for name in models:
        adapter = _loaded(name, device)
        size, interpolation = store_resize(adapter, None)
        store = open_store(
            split,
            card.dataset,
            size,
            scratch / "cache",
            interpolation=interpolation,
            progress=False,
        )
        results[name] = _measure_model(adapter, store, scratch / "tokens" / name, batch_size)
    return {
        **machine(device),
        "task": TASK,
        "split": "train",
        "batch_size": batch_size,
        "dtype": "float16",
        "models": results,
    }


def _loaded(name: str, device: torch.device) -> Adapter:
    adapter = make_adapter(name)
    if isinstance(adapter, CheckpointAdapter):
        adapter.load_random(0)
    else:
        adapter.load()
    return adapter.to(device)


def _measure_model(
    adapter: Adapter, store: ImageStore, cache: Path, batch_size: int
) -> dict[str, Any]:
    device = adapter.device
    for _ in iter_tokens(adapter, store, np.arange(1), batch_size=1):
        pass  # warm-up: kernels, allocator, lazy initialisation
    _sync(device)

    before = _tokens_only_rate(adapter, store, batch_size)

    lines: list[str] = []
    started = time.perf_counter()
    cold = cached_tokens(
        adapter, TASK, "train", store, cache, batch_size=batch_size, log=lines.append
    )
    _sync(device)
    cold_s = time.perf_counter() - started
    written = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    # the better of a pass before and one after: the first pass over a split pays one-time
    # costs (page faults, thread pools) the cold extraction would otherwise be charged less
    tokens_only = max(before, _tokens_only_rate(adapter, store, batch_size))

    token_cache._VERIFIED.clear()  # read back as a new process would: checksum verified once
    started = time.perf_counter()
    warm = cached_tokens(adapter, TASK, "train", store, cache, batch_size=batch_size)
    float(np.asarray(warm.tokens[-1]).sum())  # touch the last rows: the map is really read
    warm_s = time.perf_counter() - started

    images, tokens, dim = cold.tokens.shape
    return {
        "input": list(adapter.input_spec.size),
        "images": images,
        "grid": list(cold.grid),
        "tokens_per_image": tokens,
        "token_dim": dim,
        "bytes_per_image": cold.nbytes // images,
        "size_line": lines[0] if lines else None,
        "tokens_only_images_per_s": round(tokens_only, 2),
        "cold_seconds": round(cold_s, 3),
        "cold_images_per_s": round(images / cold_s, 2),
        "cold_fraction_of_tokens_only": round(images / cold_s / tokens_only, 4),
        "mb_written": round(written / 1e6, 3),
        "mb_per_s": round(written / 1e6 / cold_s, 2),
        "warm_seconds": round(warm_s, 4),
        "warm_from_cache": warm.from_cache,
        "warm_gb_per_s": round(warm.nbytes / 1e9 / warm_s, 3) if warm_s > 0 else None,
    }


def _tokens_only_rate(adapter: Adapter, store: ImageStore, batch_size: int) -> float:
    """Images per second of `iter_tokens` over the whole store, nothing written."""
    started = time.perf_counter()
    for _ in iter_tokens(adapter, store, batch_size=batch_size):
        pass
    _sync(adapter.device)
    return len(store) / (time.perf_counter() - started)


def write_rate(cache: Path, images: int, batch_size: int) -> dict[str, Any]:
    """How fast the cache takes ViT-B/16 rows (196 x 768 float16) with no model in front: the
    most a fast GPU extraction can write (reserve, fill in batches, hash, flush, rename)."""
    shape = (images, VIT_B16_TOKENS, VIT_B16_DIM)
    key = token_cache.TokenKey("vit-b16-rows", "0" * 16, "perf", "train")
    ids = [f"{i}" for i in range(images)]
    block = np.random.default_rng(0).normal(size=(batch_size, *shape[1:])).astype(np.float16)
    started = time.perf_counter()
    writer = token_cache.TokenWriter.open(key, cache, ids, "perf", "perf", shape, (14, 14))
    reserved_s = time.perf_counter() - started
    for start in range(0, images, batch_size):
        writer.write(block[: min(batch_size, images - start)])
    writer.finish()
    seconds = time.perf_counter() - started
    nbytes = images * VIT_B16_TOKENS * VIT_B16_DIM * FLOAT16_BYTES
    return {
        "images": images,
        "mb": round(nbytes / 1e6, 1),
        "seconds": round(seconds, 3),
        "reserve_seconds": round(reserved_s, 3),
        "mb_per_s": round(nbytes / 1e6 / seconds, 1),
        "images_per_s": round(images / seconds, 1),
    }


def cache_size_table(folder: Path) -> dict[str, Any]:
    """Bytes of float16 ViT-B/16 tokens (196 x 768 per image) per task and split, from the
    `split_sizes` of the task cards in `folder` (cards without sizes are left out)."""
    per_image = VIT_B16_TOKENS * VIT_B16_DIM * FLOAT16_BYTES
    tasks = {}
    for path in sorted(folder.glob("*.yaml")):
        card = read_card(path)
        if not card.split_sizes:
            continue
        splits = {
            split: {"images": count, "mb": round(count * per_image / 1e6, 1)}
            for split, count in card.split_sizes.items()
        }
        images = sum(card.split_sizes.values())
        tasks[card.name] = {
            "splits": splits,
            "images": images,
            "total": token_cache.human_bytes(images * per_image),
            "total_bytes": images * per_image,
        }
    total = sum(t["total_bytes"] for t in tasks.values())
    return {
        "per_image": f"{VIT_B16_TOKENS} tokens x {VIT_B16_DIM} x {FLOAT16_BYTES} bytes = "
        f"{token_cache.human_bytes(per_image)}",
        "bytes_per_image": per_image,
        "tasks": tasks,
        "all_tasks": token_cache.human_bytes(total),
        "all_tasks_bytes": total,
        "one_corrupted_view_of_every_test_split": token_cache.human_bytes(
            sum(t["splits"].get("test", {}).get("images", 0) for t in tasks.values()) * per_image
        ),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    raise SystemExit(main())
