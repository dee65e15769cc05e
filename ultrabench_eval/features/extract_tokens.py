"""Patch-token extraction: image store -> (view) -> adapter.embed_tokens on the device -> token
cache (`ultrabench_eval.features.token_cache`), for the dense and attentive probes.

Tokens are keyed like pooled features (the same fingerprint, task, split, view and view code
digest), plus the storage dtype and the digest of this module's code, so a changed model,
weights, pipeline or view never reuses stale tokens.

They are stored as float16 by default: half the bytes of float32 (a ViT-B/16 at 224 px takes
196 x 768 x 2 = 301 kB per image instead of 602 kB), the probes read them back as float32, and
tokens from a bf16 autocast forward pass (8 significant bits) lose nothing more in float16 (11
bits). Only the range is smaller: a token beyond float16's +-65504 is an error, never an inf
(store those models' tokens with `dtype="float32"`).

A run writes rows into a pre-sized `.partial` file and records them every `checkpoint_seconds`
(and when it is interrupted), so a killed run resumes from the rows done; a resumed result is
byte for byte the one an uninterrupted run with the same batch size writes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ultrabench_eval.core.digests import json_digest
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.image_store import ImageStore
from ultrabench_eval.data.loader import device_batches
from ultrabench_eval.features import token_cache
from ultrabench_eval.features.cache_identity import extraction_identity
from ultrabench_eval.features.extract import autocast_for, feature_key
from ultrabench_eval.features.token_cache import TokenKey, TokenWriter, human_bytes
from ultrabench_eval.models.adapter import Adapter, module_digests

CHECKPOINT_SECONDS = 60.0
DEFAULT_DTYPE = "float16"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class TokenSet:
    """Patch tokens of a split, one row per image in store order."""

    tokens: np.ndarray  # [N, T, D], T = grid h * w; a read-only memory map of the cache file
    grid: tuple[int, int]
    from_cache: bool
    seconds: float
    device: str | None  # where the tokens were computed (a cached file's sidecar)
    nbytes: int


def token_key(
    adapter: Adapter, task: str, split: str, view: View, dtype: str = DEFAULT_DTYPE
) -> TokenKey:
    """The cache key of a token file: the feature key (`extract.feature_key`) and the dtype."""
    return TokenKey.of(feature_key(adapter, task, split, view), dtype)


@functools.cache
def extraction_code_digest() -> str:
    """Digest of this module's code: how tokens are cast and stored shapes their bytes."""
    return json_digest(module_digests({__name__}))


def iter_tokens(
    adapter: Adapter,
    store: ImageStore,
    indices: np.ndarray | None = None,
    *,
    batch_size: int = 64,
    view: View | None = None,
) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """(float32 tokens [b, T, D] on the CPU, grid) per batch, for the images at `indices`."""
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
            tokens, grid = adapter.embed_tokens(images)
        yield tokens.float().cpu().numpy(), (int(grid[0]), int(grid[1]))


def cached_tokens(
    adapter: Adapter,
    task: str,
    split: str,
    store: ImageStore,
    cache_root: Path,
    *,
    batch_size: int = 64,
    view: View | None = None,
    dtype: str = DEFAULT_DTYPE,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    log: Callable[[str], None] | None = None,
) -> TokenSet:
    """Patch tokens from the cache when they match the store exactly, else extracted into it.

    Before extracting, says (`log`, else stderr) how large the file will be, and stops with one
    error line when the cache folder cannot hold it.
    """
    if not adapter.gives_tokens:
        raise UserError(
            f"model '{adapter.name}' gives no patch tokens (its adapter has no forward_tokens); "
            "use a pooled-feature protocol with it, or a model that gives tokens"
        )
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    storage = token_cache.storage_dtype(dtype)
    say = log or _to_stderr
    view = view or View.clean()
    key = token_key(adapter, task, split, view, dtype)
    ids, content_hash, code = store.ids, store.content_hash, extraction_code_digest()
    started = time.perf_counter()
    hit = token_cache.load(key, cache_root, ids, content_hash, code)
    if hit is not None:
        return _from_cache(hit, started)
    if len(store) == 0:
        raise UserError(f"{task}/{split} has no images: there are no tokens to extract")
    grid, dim = _token_layout(adapter, store, view)
    shape = (len(store), grid[0] * grid[1], dim)
    nbytes = int(np.prod(shape)) * storage.itemsize
    resumable = token_cache.partial_rows(key, cache_root, ids, content_hash, code, shape, grid)
    where = f"{task}/{split}" + ("" if view.is_clean else f" [{view.label}]")
    resuming = f" (resuming after {resumable:,} images)" if resumable else ""
    say(
        f"tokens {adapter.name} {where}: {shape[0]:,} x {shape[1]:,} x {shape[2]:,} {dtype} = "
        f"{human_bytes(nbytes)}{resuming}"
    )
    reserved = token_cache.partial_bytes(key, cache_root)  # reused, or freed before reserving
    token_cache.check_free_space(key, cache_root, max(0, nbytes - reserved), nbytes)
    with token_cache.entry_lock(key, cache_root, say):
        hit = token_cache.load(key, cache_root, ids, content_hash, code)
        if hit is not None:  # another process wrote it while this one waited
            return _from_cache(hit, started)
        writer = TokenWriter.open(key, cache_root, ids, content_hash, code, shape, grid)
        _fill(adapter, store, writer, batch_size, view, checkpoint_seconds)
        seconds = time.perf_counter() - started
        writer.finish(
            {
                "seconds": round(seconds, 3),
                "device": str(adapter.device),
                "batch_size": batch_size,
                "resumed_rows": writer.resumed,
                "versions": versions(),
                "key": extraction_identity(adapter),
            }
        )
    written = token_cache.load(key, cache_root, ids, content_hash, code)
    assert written is not None, "a freshly written token file must load"
    tokens = written[0]
    return TokenSet(tokens, grid, False, seconds, str(adapter.device), int(tokens.nbytes))


def _from_cache(hit: tuple[np.memmap, dict], started: float) -> TokenSet:
    tokens, sidecar = hit
    grid = (int(sidecar["grid"][0]), int(sidecar["grid"][1]))
    seconds = time.perf_counter() - started
    return TokenSet(tokens, grid, True, seconds, sidecar.get("device"), int(tokens.nbytes))


def _token_layout(adapter: Adapter, store: ImageStore, view: View) -> tuple[tuple[int, int], int]:
    """(grid, token width): as the adapter documents them, else from one image's tokens."""
    try:
        grid, dim = adapter.token_grid, adapter.token_dim
    except NotImplementedError:
        tokens, grid = next(iter_tokens(adapter, store, np.arange(1), batch_size=1, view=view))
        dim = tokens.shape[-1]
    return (int(grid[0]), int(grid[1])), int(dim)


def _fill(
    adapter: Adapter,
    store: ImageStore,
    writer: TokenWriter,
    batch_size: int,
    view: View,
    every: float,
) -> None:
    """Extract the rows the writer does not hold yet, recording them every `every` seconds and
    when interrupted (a run that did nothing, or failed on its input, leaves nothing behind)."""
    expected = writer.header["shape"][1:]
    grid = tuple(writer.header["grid"])
    dtype = np.dtype(writer.key.dtype)
    remaining = np.arange(writer.done, len(store))
    last = time.perf_counter()
    try:
        for tokens, got in iter_tokens(adapter, store, remaining, batch_size=batch_size, view=view):
            if list(tokens.shape[1:]) != expected or got != grid:
                raise UserError(
                    f"model '{adapter.name}' gave tokens {list(tokens.shape[1:])} on a "
                    f"{got[0]}x{got[1]} grid but documents {expected} on {grid[0]}x{grid[1]} "
                    "(fix its token_grid / token_dim)"
                )
            writer.write(to_storage(tokens, dtype, adapter.name))
            if time.perf_counter() - last >= every:
                writer.checkpoint()
                last = time.perf_counter()
    except UserError:
        writer.discard()  # the same input fails the same way: nothing to resume
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            if writer.done > writer.resumed:
                writer.checkpoint()
            elif writer.done == 0:
                writer.discard()  # no rows: do not leave a reserved file behind
        raise


def to_storage(tokens: np.ndarray, dtype: np.dtype, model: str) -> np.ndarray:
    """float32 tokens cast to the storage dtype; a finite value beyond float16's range is an
    error rather than an inf."""
    with np.errstate(over="ignore"):  # an overflow is reported below, as one line
        out = tokens.astype(dtype, copy=False)
    if dtype == np.float16 and np.isinf(out).any():
        overflow = np.isinf(out) & np.isfinite(tokens)
        if overflow.any():
            peak = float(np.abs(tokens[overflow]).max())
            raise UserError(
                f"model '{model}' gives tokens up to {peak:.4g}, beyond float16's "
                f"{_FLOAT16_MAX:g}: store its tokens as float32 (dtype='float32')"
            )
    return out


def versions() -> dict[str, str | None]:
    """Package versions for the sidecar, read from the installed metadata: importing timm only
    to ask its version costs seconds (it imports torchvision and torch's compiler)."""
    import ultrabench_eval

    return {
        "ultrabench_eval": ultrabench_eval.__version__,
        "torch": torch.__version__,
        "timm": _installed_version("timm"),
        "numpy": np.__version__,
    }


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)
