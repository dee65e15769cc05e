"""`make perf`: how close feature extraction comes to the model's own forward speed.

Measured on one model (a ViT-S/16 on CPU, a ViT-B/16 on a GPU, random weights: speed does not
depend on them) over a split of the generated suite:

- the limit: forward passes alone, on random tensors already on the device;
- end to end from the image store (uint8 to the device, resize and normalise there, forward);
- the peer: the loop a user writes by hand (PIL decode, timm transforms, a DataLoader);
- decoding into the store, the warm-cache re-run, peak memory;

and writes them to `results/perf/extraction-<device>.json`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ultrabench_eval.core import atomic
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.dataset import Split, open_dataset
from ultrabench_eval.data.image_store import open_store
from ultrabench_eval.data.synth import write_task
from ultrabench_eval.features.extract import (
    autocast_for,
    cached_features,
    extract,
    versions,
)
from ultrabench_eval.features.stores import store_resize
from ultrabench_eval.models.adapter import CheckpointAdapter
from ultrabench_eval.models.factory import make_adapter

CPU_MODEL = "random-vit-s"
GPU_MODEL = "timm:vit_base_patch16_224"
TASK = "synth-view"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__)
    parser.add_argument("--out", default="results/perf", help="folder for the JSON")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", help=f"default: {CPU_MODEL} on CPU, {GPU_MODEL} on GPU")
    parser.add_argument("--images", type=int, default=300, help="images in the generated split")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loader-workers", type=int, default=2, help="the hand-written loop's")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model = args.model or (GPU_MODEL if device.type == "cuda" else CPU_MODEL)
    with tempfile.TemporaryDirectory(prefix="ubench-perf-") as scratch:
        figures = measure(
            model, device, Path(scratch), args.images, args.batch_size, args.loader_workers
        )
    write_figures(figures, args.out, "extraction", device)
    return 0


def machine(device: torch.device) -> dict[str, Any]:
    """What a perf figure was measured on: the device's name and the CPU threads."""
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_threads": torch.get_num_threads(),
    }


def write_figures(
    figures: dict[str, Any], out: str | Path, stem: str, device: torch.device
) -> Path:
    """Stamp `figures` with versions and time, write `<out>/<stem>-<device type>.json`
    atomically and print it."""
    figures = {
        **figures,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = Path(out) / f"{stem}-{device.type}.json"
    atomic.write_json(path, figures)
    print(json.dumps(figures, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return path


def measure(
    model_name: str,
    device: torch.device,
    scratch: Path,
    num_images: int,
    batch_size: int,
    loader_workers: int,
) -> dict[str, Any]:
    write_task(TASK, scratch / "data", num_images=num_images, workers=2)
    card = TASKS.get(TASK)
    split = open_dataset(card, scratch / "data").splits["train"]
    adapter = make_adapter(model_name)
    if isinstance(adapter, CheckpointAdapter):
        adapter.load_random(0)
    else:
        adapter.load()
    adapter.to(device)
    size, interpolation = store_resize(adapter, None)

    started = time.perf_counter()
    store = open_store(
        split, card.dataset, size, scratch / "cache", interpolation=interpolation, progress=False
    )
    decode_s = time.perf_counter() - started

    forward = _forward_throughput(adapter, device, batch_size, len(store))
    extract(adapter, store, np.arange(min(batch_size, len(store))), batch_size=batch_size)
    _sync(device)
    started = time.perf_counter()
    ours = extract(adapter, store, batch_size=batch_size)
    _sync(device)
    end_to_end = len(store) / (time.perf_counter() - started)

    theirs, handwritten = _handwritten_loop(adapter, split, device, batch_size, loader_workers)
    pooling = adapter.default_pooling
    difference = np.abs(ours[pooling] - theirs[pooling]).max() / np.abs(theirs[pooling]).max()

    cache = scratch / "features"
    cached_features(adapter, TASK, "train", store, cache, batch_size=batch_size)
    calls = _count_forward_calls(adapter)
    started = time.perf_counter()
    warm = cached_features(adapter, TASK, "train", store, cache, batch_size=batch_size)
    warm_s = time.perf_counter() - started

    return {
        **machine(device),
        "model": model_name,
        "input": list(adapter.input_spec.size),
        "images": len(store),
        "batch_size": batch_size,
        "forward_images_per_s": round(forward, 2),
        "end_to_end_images_per_s": round(end_to_end, 2),
        "handwritten_images_per_s": round(handwritten, 2),
        "end_to_end_fraction_of_forward": round(end_to_end / forward, 4),
        "speedup_vs_handwritten_loop": round(end_to_end / handwritten, 3),
        "decode_images_per_s": round(len(store) / decode_s, 1),
        "warm_rerun_seconds": round(warm_s, 4),
        "warm_rerun_from_cache": warm.from_cache,
        "warm_rerun_forward_calls": calls(),
        "max_relative_difference_vs_handwritten": float(difference),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if device.type == "cuda"
        else None,
    }


def _forward_throughput(adapter, device, batch_size: int, images: int) -> float:
    """Images per second of the forward pass alone: the ceiling for extraction."""
    spec = adapter.input_spec
    x = torch.randn(batch_size, spec.channels, *spec.size, device=device)
    x = x.contiguous(memory_format=adapter.memory_format)
    batches = max(1, images // batch_size)
    with torch.inference_mode(), autocast_for(device):
        adapter.forward_features(x)  # warm-up
        _sync(device)
        started = time.perf_counter()
        for _ in range(batches):
            adapter.forward_features(x)
        _sync(device)
    return batches * batch_size / (time.perf_counter() - started)


class _Files(torch.utils.data.Dataset):
    """What a user writes: open each PNG with PIL, convert to RGB, apply timm's transform."""

    def __init__(self, split: Split, transform) -> None:
        self.paths = [split.root / r.image for r in split.records]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


def _handwritten_loop(adapter, split: Split, device, batch_size: int, workers: int):
    from timm.data import create_transform

    spec = adapter.input_spec
    # the protocol resizes without cropping: timm's "squash" mode at crop_pct 1
    transform = create_transform(
        input_size=(3, *spec.size),
        interpolation=spec.interpolation,
        mean=spec.mean,
        std=spec.std,
        crop_pct=1.0,
        crop_mode="squash",
    )
    loader = torch.utils.data.DataLoader(
        _Files(split, transform),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    outputs: dict[str, list[torch.Tensor]] = {}
    started = time.perf_counter()
    with torch.inference_mode(), autocast_for(device):
        for batch in loader:
            out = adapter.forward_features(batch.to(device, non_blocking=True))
            for name, value in out.items():
                outputs.setdefault(name, []).append(value.float())
    _sync(device)
    seconds = time.perf_counter() - started
    features = {k: torch.cat(v).cpu().numpy() for k, v in outputs.items()}
    return features, len(split) / seconds


def _count_forward_calls(adapter):
    calls = [0]
    original = adapter.forward_features

    def counted(x):
        calls[0] += 1
        return original(x)

    adapter.forward_features = counted
    return lambda: calls[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    raise SystemExit(main())
