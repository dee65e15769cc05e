"""Batches from the image store to the device, the next one prepared while the current one runs.

A background thread copies each batch out of the memory map into (pinned, on a GPU) host memory;
on a GPU the host-to-device copy then runs on its own stream, so it overlaps the forward pass of
the batch before. Images travel as uint8, a quarter of the bytes of float32.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ultrabench_eval.data.image_store import ImageStore

_PREFETCH = 2  # host batches prepared ahead


@dataclass(frozen=True)
class DeviceBatch:
    start: int  # position of the first image in the index list
    positions: np.ndarray  # store indices of the images
    images: torch.Tensor  # uint8 [b, 1, S, S] on the device
    masks: torch.Tensor | None  # uint8 [b, 1, S, S] on the device, when asked for


def device_batches(
    store: ImageStore,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device,
    with_masks: bool = False,
) -> Iterator[DeviceBatch]:
    """The images at `indices`, in order, `batch_size` at a time, on `device`."""
    pin = device.type == "cuda"
    host = _host_batches(store, indices, batch_size, with_masks, pin)
    if device.type != "cuda":
        for start, positions, images, masks in host:
            yield DeviceBatch(start, positions, images.to(device), _to(masks, device))
        return
    copy_stream = torch.cuda.Stream(device=device)
    pending = None
    for item in host:
        start, positions, images, masks = item
        with torch.cuda.stream(copy_stream):
            staged = (
                start,
                positions,
                images.to(device, non_blocking=True),
                _to(masks, device, non_blocking=True),
            )
        if pending is not None:
            yield pending
        # The compute stream may use the batch only once its copy has landed.
        torch.cuda.current_stream(device).wait_stream(copy_stream)
        for tensor in staged[2:]:
            if tensor is not None:
                tensor.record_stream(torch.cuda.current_stream(device))
        pending = DeviceBatch(*staged)
    if pending is not None:
        yield pending


def _to(tensor: torch.Tensor | None, device: torch.device, **kwargs) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(device, **kwargs)


def _host_batches(
    store: ImageStore, indices: np.ndarray, batch_size: int, with_masks: bool, pin: bool
) -> Iterator[tuple[int, np.ndarray, torch.Tensor, torch.Tensor | None]]:
    """Host tensors prepared by a background thread, in order."""
    starts = range(0, len(indices), batch_size)
    ready: queue.Queue = queue.Queue(maxsize=_PREFETCH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for start in starts:
                if stop.is_set():
                    return
                positions = indices[start : start + batch_size]
                images = _host_tensor(store.images, positions, pin)
                masks = _host_tensor(store.masks, positions, pin) if with_masks else None
                ready.put((start, positions, images, masks))
            ready.put(None)
        except BaseException as exc:  # surfaced in the consumer
            ready.put(exc)

    worker = threading.Thread(target=produce, name="ubench-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not ready.empty():  # let a blocked producer finish
            ready.get_nowait()
        worker.join(timeout=5)


def _host_tensor(array: np.ndarray, positions: np.ndarray, pin: bool) -> torch.Tensor:
    if positions.size and np.all(np.diff(positions) == 1):
        block = np.array(array[positions[0] : positions[-1] + 1])  # one read from the map
    else:
        block = array[positions]  # fancy indexing copies
    tensor = torch.from_numpy(block).unsqueeze(1)
    return tensor.pin_memory() if pin else tensor
