"""The CPU kernels behind the filtering corruptions: OpenCV's separable filter run on the
tensors' own memory (no copy, no round trip), images shared out over torch's CPU threads.

torch has no fast one-channel separable filter on a CPU (a grouped convolution is 30x slower
than OpenCV's, banded matrix products 2-3x), and a chain of eager passes over a batch costs
more than the filter itself. OpenCV releases the GIL, so the threads run side by side. Each
plane (or image) is done alone, so its result does not depend on the batch. The results equal
the device path (torch, shifted slices) up to float rounding; tests hold them to it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

# dtypes OpenCV filters; uint8 planes are filtered into float32
DTYPES = (torch.uint8, torch.float32, torch.float64)

_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)
_planes = threading.local()  # each thread's scratch planes


def filter_planes(
    x: torch.Tensor, along_y: torch.Tensor, along_x: torch.Tensor, padding: str
) -> torch.Tensor:
    """Correlate every [H, W] plane of a CPU tensor with the outer product of two odd 1-D
    kernels, zero or circular padding (see `filters.filter_separable`)."""
    import cv2  # opencv-python-headless, loaded only when a CPU kernel runs

    h, w = x.shape[-2:]
    ry, rx = along_y.numel() // 2, along_x.numel() // 2
    planes = x.reshape(-1, h, w)
    if padding == "circular":  # OpenCV's column filter cannot wrap: pad, then cut the inside
        planes = F.pad(planes[:, None], (rx, rx, ry, ry), mode="circular")[:, 0]
    source = planes.contiguous().numpy()
    dtype = torch.float32 if x.dtype == torch.uint8 else x.dtype
    out = torch.empty(source.shape, dtype=dtype)
    target = out.numpy()
    ky, kx = along_y.to(dtype).numpy(), along_x.to(dtype).numpy()
    depth = cv2.CV_32F if dtype == torch.float32 else cv2.CV_64F

    def run(rows: range) -> None:
        for i in rows:
            cv2.sepFilter2D(source[i], depth, kx, ky, dst=target[i], borderType=cv2.BORDER_CONSTANT)

    in_threads(len(source), run)
    if padding == "circular":
        out = out[:, ry : ry + h, rx : rx + w]
    return out.reshape(x.shape)


def normalised_blur_bytes(
    images: torch.Tensor, masks: torch.Tensor, along_y: torch.Tensor, along_x: torch.Tensor
) -> torch.Tensor:
    """uint8 [B, 1, H, W] and masks (nonzero inside) -> uint8 [B, 1, H, W]: inside the mask
    blur(image x mask) / blur(mask) rounded half to even, outside the image as it was. One
    image at a time from the bytes to the bytes, every step in OpenCV or numpy inside the
    threads: a torch operation between the steps would wake torch's own threads, which then
    spin on the cores these need.

    The image lies beside its mask in one wide plane, a band of zeros as wide as the kernel's
    reach between them, so one filter call does both (cheaper than two)."""
    import cv2

    b, _, h, w = images.shape
    gap = along_x.numel() // 2
    source = images.reshape(b, h, w).contiguous().numpy()
    stencils = masks.reshape(b, h, w).contiguous()
    stencils = stencils.view(torch.uint8) if stencils.dtype == torch.bool else stencils
    stencils = stencils.numpy()
    out = torch.empty((b, 1, h, w), dtype=torch.uint8)
    target = out.numpy()[:, 0]
    ky = along_y.to(torch.float32).numpy()
    kx = along_x.to(torch.float32).numpy()

    def run(part: range) -> None:
        wide, blurred, inside, outside = _scratch(h, w, gap)
        for i in part:
            np.not_equal(stencils[i], 0, out=inside)
            np.logical_not(inside, out=outside)
            np.multiply(source[i], inside, out=wide[:, :w])
            wide[:, w + gap :] = inside
            cv2.sepFilter2D(wide, cv2.CV_32F, kx, ky, dst=blurred, borderType=cv2.BORDER_CONSTANT)
            cv2.divide(blurred[:, :w], blurred[:, w + gap :], dst=target[i], dtype=cv2.CV_8U)
            np.copyto(target[i], source[i], where=outside)

    in_threads(b, run)
    return out


def _scratch(h: int, w: int, gap: int) -> tuple[np.ndarray, ...]:
    """This thread's planes for `normalised_blur_bytes`, kept from call to call: memory freed
    and mapped again for every batch costs page faults (and, with threads, TLB shootdowns)
    that can take longer than the filter."""
    kept = getattr(_planes, "kept", None)
    if kept is None or kept[0].shape != (h, 2 * w + gap) or kept[2].shape != (h, w):
        kept = (
            np.zeros((h, 2 * w + gap), dtype=np.uint8),  # the band between stays 0
            np.empty((h, 2 * w + gap), dtype=np.float32),
            np.empty((h, w), dtype=bool),
            np.empty((h, w), dtype=bool),
        )
        _planes.kept = kept
    return kept


def in_threads(count: int, work: Callable[[range], None]) -> None:
    """`work` over range(count) cut into one part per torch CPU thread; this thread takes the
    first part itself rather than wait idle for the pool."""
    if count == 0:
        return
    step = -(-count // min(torch.get_num_threads(), count))
    parts = [range(i, min(i + step, count)) for i in range(0, count, step)]
    pool = _thread_pool(len(parts) - 1) if len(parts) > 1 else None
    others = [pool.submit(work, part) for part in parts[1:]] if pool else []
    work(parts[0])
    for done in others:
        done.result()


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One pool for the process, made again after a fork (a forked child has no threads)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid() or _pool[1] < workers:
        if _pool is not None and _pool[0] == os.getpid():
            _pool[2].shutdown(wait=False)  # more threads asked for: its idle threads end
        _pool = (os.getpid(), workers, ThreadPoolExecutor(workers, "ubench-cpu"))
    return _pool[2]
