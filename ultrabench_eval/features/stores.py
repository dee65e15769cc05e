"""The image stores a model reads: at its own input size, or at one fixed size for all."""

from __future__ import annotations

from pathlib import Path

from ultrabench_eval.data.dataset import Dataset
from ultrabench_eval.data.image_store import ImageStore, open_store
from ultrabench_eval.models.adapter import Adapter


def store_resize(adapter: Adapter, image_size: int | None) -> tuple[int, str]:
    """The image store's side and filter for a model: by default its own input size and
    interpolation, so the one resize from the original image is the model's, as a PIL loop
    would do it; with a fixed size, bicubic, and the model resizes on the device."""
    if image_size is not None:
        return image_size, "bicubic"
    spec = adapter.input_spec
    return max(spec.size), spec.interpolation


def open_task_stores(
    dataset: Dataset,
    size: int,
    interpolation: str,
    cache_root: Path,
    *,
    workers: int = 0,
    progress: bool = True,
) -> dict[str, ImageStore]:
    """The image store of every split of `dataset` at `size` px (see `store_resize`), decoded
    on first use."""
    return {
        name: open_store(
            split,
            dataset.card.dataset,
            size,
            cache_root,
            interpolation=interpolation,
            workers=workers,
            progress=progress,
        )
        for name, split in dataset.splits.items()
    }
