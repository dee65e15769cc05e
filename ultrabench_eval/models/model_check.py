"""`ubench models --check`: load every model from a checkpoint built in its official layout.

Each file holds random weights under the official key names and shapes, so the check needs no
download: it shows that a user who has the real file gets it loaded, key for key."""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ultrabench_eval.models.adapter import Adapter, CheckpointAdapter


@dataclass(frozen=True)
class CheckRow:
    model: str
    layout: str
    file_name: str
    ok: bool
    message: str
    seconds: float


def check_models(
    adapters: list[Adapter], workdir: Path | None = None, depth: int | None = None
) -> Iterator[CheckRow]:
    """One row per (model, layout): build the file, load it, embed one image."""
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="ubench-check-")) if own_dir else Path(workdir)
    try:
        for adapter in adapters:
            yield from _check_one(adapter, root, depth)
            gc.collect()
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


def _check_one(adapter: Adapter, root: Path, depth: int | None) -> Iterator[CheckRow]:
    def variant() -> Adapter:
        if depth and isinstance(adapter, CheckpointAdapter):
            return adapter.reduced(depth)
        return adapter

    layouts = variant().checkpoint_layouts()
    if not layouts:
        started = time.perf_counter()
        ok, message = _load_and_embed(variant(), None)
        message = message if not ok else "no checkpoint to load (weight-free or generated): ran"
        yield CheckRow(adapter.name, "-", "-", ok, message, time.perf_counter() - started)
        return
    for layout in layouts:
        started = time.perf_counter()
        folder = root / adapter.name.replace(":", "_") / layout.name
        try:
            path = layout.build(folder / layout.file_name)
            ok, message = _load_and_embed(variant(), path)
        except Exception as exc:  # a failed check is reported, not raised
            ok, message = False, f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        yield CheckRow(
            adapter.name, layout.name, layout.file_name, ok, message, time.perf_counter() - started
        )


def _load_and_embed(adapter: Adapter, path: Path | None) -> tuple[bool, str]:
    try:
        adapter.load(None if path is None else str(path))
        images = torch.randint(
            0, 256, (1, 1, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
        )
        out = adapter.embed(images)
        tokens = adapter.embed_tokens(images) if adapter.gives_tokens else None
        documented = (adapter.token_grid, adapter.token_dim) if tokens else None
    except Exception as exc:  # a failed check is reported, not raised
        return False, f"{type(exc).__name__}: {exc}"
    dims = {k: int(v.shape[1]) for k, v in out.items()}
    if dims != adapter.embed_dims:
        return False, f"embedding widths {dims}, documented {adapter.embed_dims}"
    pooled = ", ".join(f"{k} {d}-d" for k, d in dims.items())
    if tokens is None:
        return True, f"loaded, {pooled}, no patch tokens"
    (h, w), width = tokens.grid, int(tokens.tokens.shape[2])
    if ((h, w), width) != documented:
        return False, f"tokens {(h, w)} x {width}-d, documented {documented}"
    return True, f"loaded, {pooled}, tokens {h}x{w} x {width}-d"
