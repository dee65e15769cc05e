"""Filling an image store's arrays: records decoded in chunks, serially or in worker processes.

Each chunk is decoded, resized and masked by one process, which writes its rows straight into
the store's files (a memory map of its slice) and returns only its stage times: no image is
pickled between processes. A serial build runs the same chunk function in this process, so
both give the same bytes.

Workers come from a fork server (on Linux and macOS; spawn elsewhere): a clean process started
once, like spawn (no torch thread pools or CUDA state inherited), that has imported the store's
code, so each later worker starts in milliseconds; and they do not import the program's main
module (see `_main_module_hidden`).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ultrabench_eval.data.dataset import Record

# the per-stage CPU seconds a build reports, summed over its processes
STAGES = ("decode_s", "resize_s", "mask_s", "write_s")
CHUNK = 32
_PRELOAD = ["ultrabench_eval.data.image_store"]

# decode(root, record, size, interpolation, stages=...) -> (image, mask), both [S, S] uint8
Decode = Callable[..., tuple[np.ndarray, np.ndarray]]
_Chunk = tuple[Decode, Path, Sequence[Record], int, tuple[Path, Path], int, str]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def fill(
    decode: Decode,
    root: Path,
    records: Sequence[Record],
    outputs: tuple[Path, Path],
    resize: tuple[int, str],
    workers: int,
    progress: Callable[[int], object] | None = None,
) -> dict[str, float]:
    """Decode `records` into the (already sized) files `outputs` (images, masks) with
    `workers` processes (1: in this one); `progress(n)` after each chunk. Returns the stage
    seconds summed over the processes, and the processes used."""
    size, interpolation = resize
    chunks: list[_Chunk] = [
        (decode, root, records[i : i + CHUNK], i, outputs, size, interpolation)
        for i in range(0, len(records), CHUNK)
    ]
    workers = max(1, min(workers, len(chunks)))
    totals = dict.fromkeys(STAGES, 0.0)
    for done, stages in _run(chunks, workers):
        for key, seconds in stages.items():
            totals[key] += seconds
        if progress is not None:
            progress(done)
    return {**totals, "workers": workers}


def _run(chunks: list[_Chunk], workers: int) -> Iterator[tuple[int, dict[str, float]]]:
    if workers <= 1:
        for chunk in chunks:
            yield len(chunk[2]), fill_chunk(chunk)
        return
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )
    try:
        with _main_module_hidden():  # the workers start here, on submission
            futures = [pool.submit(fill_chunk, chunk) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            yield len(chunk[2]), future.result()
    except BaseException:
        # an undecodable file or Ctrl-C: drop the queued chunks rather than decode them all
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start worker processes that skip importing this program's main module.

    A spawn or fork-server child first imports the parent's `__main__` (for functions defined
    there): for `ubench` that is the whole CLI and torch, seconds per worker and per split, more
    than decoding a split takes. The workers run only this package's functions, so they are
    started while `__main__` is a bare module, which multiprocessing leaves alone."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # takes effect when this process starts its fork server, the first time one is needed
    context.set_forkserver_preload(_PRELOAD)
    return context


def _init_worker(builder: int) -> None:
    import cv2

    # one process per core already: OpenCV's own threads would only compete with them
    cv2.setNumThreads(1)
    if os.name == "posix":
        threading.Thread(target=_exit_after, args=(builder,), daemon=True).start()


def _exit_after(builder: int) -> None:
    """End this worker once the building process is gone (killed): the pool's queue would
    keep it, and the fork server, waiting forever."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(builder, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass  # alive, owned by another user


def fill_chunk(chunk: _Chunk) -> dict[str, float]:
    """Decode one chunk of records and write its rows of both files; its stage seconds."""
    decode, root, records, start, outputs, size, interpolation = chunk
    stages = dict.fromkeys(STAGES, 0.0)
    shape = (len(records), size, size)
    images = np.empty(shape, dtype=np.uint8)
    masks = np.empty(shape, dtype=np.uint8)
    for i, record in enumerate(records):
        images[i], masks[i] = decode(root, record, size, interpolation, stages=stages)
    started = time.process_time()
    for path, rows in zip(outputs, (images, masks), strict=True):
        out = np.memmap(path, dtype=np.uint8, mode="r+", offset=start * size * size, shape=shape)
        out[:] = rows
        del out  # unmapped; the pages stay in the page cache, which the parent flushes
    stages["write_s"] += time.process_time() - started
    return stages
