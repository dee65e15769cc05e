"""The `dense` probe's inputs: checked (shapes, classes, subsets; an error says what to pass),
then placed where the device reads them.

Tokens that fit (a quarter of the free GPU memory; in-memory arrays on the CPU) are put on the
device once, in their stored precision; larger ones (or read-only maps) are read a minibatch at
a time. Arithmetic is float32. Label and scan masks are placed the same way, in their integer
type (a wide unsigned one is always read a minibatch at a time).
"""

from __future__ import annotations

import numpy as np
import torch

from ultrabench_eval.core.errors import UserError

__all__ = [
    "Split",
    "Tokens",
    "check_alike",
    "check_grid",
    "check_subsets",
    "checked_split",
    "checked_tokens",
]

_RESIDENT_GPU_FRACTION = 0.25  # of the free GPU memory, for tokens kept on the device
_UPLOAD_BYTES = 256 << 20  # host memory a piece of an array takes on its way to the device


# --- input checks ------------------------------------------------------------------------------


def check_grid(grid) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise UserError(f"dense probe: grid must be (h, w), got {grid!r}") from None
    if h < 1 or w < 1:
        raise UserError(f"dense probe: grid must be positive, got {(h, w)}")
    return h, w


def checked_tokens(name: str, tokens, grid: tuple[int, int]) -> np.ndarray:
    """The tokens as an array (a map stays a map, unread)."""
    if not isinstance(tokens, np.ndarray):
        tokens = np.asarray(tokens)
    shape = tokens.shape
    if len(shape) != 3 or shape[0] < 1:
        raise UserError(f"dense probe: {name} tokens must be [N, T, D] with N >= 1, got {shape}")
    if shape[1] != grid[0] * grid[1]:
        raise UserError(
            f"dense probe: {name} tokens have {shape[1]} per image but the grid {grid[0]}x"
            f"{grid[1]} has {grid[0] * grid[1]} (pass the grid the adapter gave)"
        )
    if tokens.dtype.kind != "f":
        raise UserError(f"dense probe: {name} tokens must be floats, got {tokens.dtype}")
    return tokens


def checked_split(name: str, tokens, masks, valid, grid, n_classes: int) -> tuple[np.ndarray, ...]:
    """Tokens, masks and scan masks as arrays, once their shapes and classes are right."""
    tokens = checked_tokens(name, tokens, grid)
    masks, valid = np.asarray(masks), np.asarray(valid)  # views: a map is not read here
    n = tokens.shape[0]
    mask_shape, valid_shape = masks.shape, valid.shape
    if len(mask_shape) != 3 or mask_shape[0] != n:
        raise UserError(
            f"dense probe: {name} masks must be [N, H, W] with N = {n} (one per image), got "
            f"{mask_shape}"
        )
    if valid_shape != mask_shape:
        raise UserError(
            f"dense probe: {name} scan masks {valid_shape} and label masks {mask_shape} differ "
            "in shape (both must be at the evaluation resolution)"
        )
    if masks.dtype.kind not in "iu":
        raise UserError(f"dense probe: {name} masks must hold integer class indices")
    # chunked, so a mapped split is read a piece at a time
    step = max(1, (1 << 24) // max(1, mask_shape[1] * mask_shape[2]))
    for start in range(0, n, step):
        labels = np.asarray(masks[start : start + step])
        inside = np.asarray(valid[start : start + step]).astype(bool)
        values = labels[inside]
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise UserError(
                f"dense probe: {name} masks hold class {int(values.max())} (or a negative one) "
                f"inside the scan, but n_classes is {n_classes} (classes are 0 to "
                f"{n_classes - 1}, 0 the background)"
            )
    return tokens, masks, valid


def check_alike(splits: dict[str, tuple]) -> None:
    dims = {name: np.shape(tokens)[2] for name, (tokens, _, _) in splits.items()}
    if len(set(dims.values())) > 1:
        raise UserError(f"dense probe: the splits' tokens differ in dimension: {dims}")
    sizes = {name: np.shape(masks)[1:] for name, (_, masks, _) in splits.items()}
    if len(set(sizes.values())) > 1:
        raise UserError(f"dense probe: the splits' masks differ in resolution: {sizes}")


def check_subsets(subsets, seeds, n_train: int) -> list[np.ndarray]:
    subsets = [np.asarray(s) for s in subsets]
    if not subsets:
        raise UserError("dense probe: no training subsets given (pass at least one)")
    if len(seeds) != len(subsets):
        raise UserError(
            f"dense probe: {len(subsets)} training subsets but {len(seeds)} seeds (one each)"
        )
    for i, subset in enumerate(subsets):
        if subset.ndim != 1 or subset.size == 0 or subset.dtype.kind not in "iu":
            raise UserError(
                f"dense probe: training subset {i} must be a non-empty 1-D array of image indices"
            )
        if subset.min() < 0 or subset.max() >= n_train:
            raise UserError(
                f"dense probe: training subset {i} indexes image {int(subset.max())} (or a "
                f"negative one) but the training split has {n_train}"
            )
    return [s.astype(np.int64) for s in subsets]


# --- data on the device ------------------------------------------------------------------------


class Tokens:
    """A split's tokens: on the device at once when they fit (in their stored precision), else
    read a minibatch at a time; `take` gives float32 on the device."""

    def __init__(self, array: np.ndarray, device: torch.device) -> None:
        self.array, self.device = array, device
        self.resident = _resident(array, device)

    def take(self, index: slice | np.ndarray) -> torch.Tensor:
        if self.resident is not None:
            if not isinstance(index, slice):
                index = torch.as_tensor(index, device=self.device)
            return self.resident[index].float()
        # a fancy index copies out of a (read-only) map: the copy is writable
        part = np.array(self.array[index])
        return torch.from_numpy(part).to(self.device, dtype=torch.float32, non_blocking=False)


def _resident(array: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The whole array as a tensor on the device when it may live there, else None.

    On the CPU an in-memory, writable array is shared (no copy); a map stays a map. On a GPU
    the array moves when it takes at most a quarter of the free memory."""
    if device.type == "cpu":
        usable = isinstance(array, np.ndarray) and not isinstance(array, np.memmap)
        if usable and array.flags.writeable and array.flags.c_contiguous:
            tensor = torch.from_numpy(array)
            return tensor.float() if tensor.dtype == torch.float64 else tensor
        return None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if array.nbytes > _RESIDENT_GPU_FRACTION * free:
            return None
    return _upload(array, device)


def _upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A copy of `array` on the device (float64 as float32)."""
    dtype = torch.from_numpy(np.empty(0, array.dtype)).dtype
    dtype = torch.float32 if dtype == torch.float64 else dtype
    out = torch.empty(array.shape, dtype=dtype, device=device)
    # a piece at a time: a map is never read whole into host memory
    step = max(1, _UPLOAD_BYTES // max(1, array[:1].nbytes))
    for start in range(0, len(array), step):
        part = np.array(array[start : start + step])  # writable: torch takes no read-only array
        out[start : start + step] = torch.from_numpy(part).to(device, dtype)
    return out


class Split:
    """A split's tokens, label masks and scan masks, as the device reads them."""

    def __init__(self, tokens, masks, valid, device: torch.device) -> None:
        self.tokens = Tokens(tokens, device)
        self.masks, self.valid = masks, valid
        self.device = device
        self.size = (int(masks.shape[1]), int(masks.shape[2]))
        self._masks = _resident_labels(masks, device)
        self._valid = _resident_labels(valid, device)

    def __len__(self) -> int:
        return len(self.masks)

    def labels(self, index: slice | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Class indices (long, 0 outside the scan: those pixels are never scored) and the scan
        mask (bool) of the images `index`, on the device."""
        masks, valid = (
            _take_labels(resident, array, index, self.device)
            for resident, array in ((self._masks, self.masks), (self._valid, self.valid))
        )
        valid = valid.bool()
        return torch.where(valid, masks.long(), 0), valid


def _resident_labels(array: np.ndarray, device: torch.device) -> torch.Tensor | None:
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if array.dtype.kind == "u" and array.dtype != np.uint8:
        return None  # torch's support for wide unsigned types is partial: read as int64
    return _resident(array, device) if array.dtype.kind in "iu" else None


def _take_labels(resident, array, index, device) -> torch.Tensor:
    if resident is not None:
        if not isinstance(index, slice):
            index = torch.as_tensor(index, device=device)
        return resident[index]
    part = np.asarray(array[index])
    part = part.astype(np.uint8) if part.dtype == np.bool_ else part.astype(np.int64)
    return torch.from_numpy(part).to(device)
