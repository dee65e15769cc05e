"""Applying fitted `dense` heads to tokens: the masks they predict (`predict_masks`) and their
confusion counts against label masks (`score_masks`), for one head or many at once.

A head is linear per patch; its logits [K, h, w] are upsampled bilinearly (align_corners=False)
to the masks' resolution, and the prediction is their argmax. Every head reads the same tokens
in one matmul, and the images go a chunk at a time, so that the upsampled logits held at once
stay within a budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ultrabench_eval.core.device import AUTO, resolve_device
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.dense_data import (
    Split,
    Tokens,
    check_grid,
    checked_split,
    checked_tokens,
)
from ultrabench_eval.probes.segmentation_metrics import confusion_counts

__all__ = [
    "HeadStack",
    "LinearSegmentationHead",
    "image_chunks",
    "predict_masks",
    "score_masks",
    "split_counts",
]

# Upsampled logits held at once while scoring: elements (float32).
_EVAL_ELEMENTS = {"cuda": 1 << 26, "cpu": 1 << 23}


@dataclass(frozen=True)
class LinearSegmentationHead:
    """A fitted head on raw tokens: logits = tokens @ weight.T + bias, per patch."""

    weight: np.ndarray  # float32 [K, D]
    bias: np.ndarray  # float32 [K]

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])


def predict_masks(
    heads: LinearSegmentationHead | Sequence[LinearSegmentationHead],
    tokens: np.ndarray,
    grid: tuple[int, int],
    size: int | tuple[int, int],
    *,
    device: str | torch.device | None = AUTO,
) -> np.ndarray:
    """Masks predicted by a head for tokens [N, T, D]: uint8 [N, H, W] (the argmax of the
    logits upsampled bilinearly to `size`); a sequence of heads gives [P, N, H, W]."""
    stack, single = _heads_on(heads, device)
    grid = check_grid(grid)
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    tokens = checked_tokens("tokens", tokens, grid)
    _check_dim(stack, tokens)
    source = Tokens(tokens, stack.weight.device)
    out = np.empty((len(stack), len(tokens), height, width), dtype=np.uint8)
    per_image = len(stack) * stack.n_classes * height * width  # upsampled logits
    for chunk in image_chunks(len(tokens), per_image, source.device):
        pred = _argmax(stack, source.take(chunk), grid, (height, width))
        out[:, chunk] = pred.to(torch.uint8).cpu().numpy()
    return out[0] if single else out


def score_masks(
    heads: LinearSegmentationHead | Sequence[LinearSegmentationHead],
    tokens: np.ndarray,
    masks: np.ndarray,
    valid: np.ndarray,
    grid: tuple[int, int],
    *,
    device: str | torch.device | None = AUTO,
) -> np.ndarray:
    """Confusion counts of a head on tokens [N, T, D] against masks [N, H, W] inside `valid`:
    int64 [N, K, 3] (`segmentation_metrics.confusion_counts`); a sequence of heads gives
    [P, N, K, 3]."""
    stack, single = _heads_on(heads, device)
    grid = check_grid(grid)
    tokens, masks, valid = checked_split("scored", tokens, masks, valid, grid, stack.n_classes)
    _check_dim(stack, tokens)
    counts = split_counts(stack, Split(tokens, masks, valid, stack.weight.device), grid)
    counts = counts.cpu().numpy()
    return counts[0] if single else counts


@dataclass(frozen=True)
class HeadStack:
    """Heads on raw tokens, stacked: weight [P, K, D], bias [P, K] (float32, on the device)."""

    weight: torch.Tensor
    bias: torch.Tensor

    @classmethod
    def of(cls, heads: Sequence[LinearSegmentationHead], device: torch.device) -> HeadStack:
        weight = np.stack([np.asarray(h.weight, dtype=np.float32) for h in heads])
        bias = np.stack([np.asarray(h.bias, dtype=np.float32) for h in heads])
        return cls(torch.as_tensor(weight, device=device), torch.as_tensor(bias, device=device))

    def __len__(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[1])


def _heads_on(heads, device) -> tuple[HeadStack, bool]:
    single = isinstance(heads, LinearSegmentationHead)
    heads = [heads] if single else list(heads)
    if not heads:
        raise UserError("dense probe: no heads given to apply")
    shapes = {(np.shape(h.weight), np.shape(h.bias)) for h in heads}
    (weight_shape, bias_shape), *others = shapes
    if others or len(weight_shape) != 2 or bias_shape != weight_shape[:1]:
        raise UserError(
            "dense probe: heads must share one shape, weight [K, D] and bias [K]; got "
            f"{sorted(shapes)}"
        )
    return HeadStack.of(heads, resolve_device(device)), single


def _check_dim(stack: HeadStack, tokens: np.ndarray) -> None:
    if tokens.shape[2] != stack.weight.shape[2]:
        raise UserError(
            f"dense probe: tokens have {tokens.shape[2]} dimensions but the head was fitted on "
            f"{stack.weight.shape[2]} (use the tokens of the model the head was fitted on)"
        )


def _upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _argmax(stack: HeadStack, x: torch.Tensor, grid, size) -> torch.Tensor:
    """Predicted classes [P, N, H, W] of every head for shared tokens x [N, T, D]: one matmul
    with every head's weights, the tokens never copied per head."""
    (n_problems, k, dim), n = stack.weight.shape, len(x)
    z = torch.addmm(stack.bias.reshape(-1), x.reshape(-1, dim), stack.weight.reshape(-1, dim).T)
    # channels last ([P * N, h, w, K] in memory): `interpolate` keeps the layout, and the
    # argmax over classes reads contiguous memory (on the CPU, ten times faster than over
    # channel planes)
    logits = z.view(n, *grid, n_problems, k).permute(3, 0, 1, 2, 4).reshape(-1, *grid, k)
    return _upsample(logits.permute(0, 3, 1, 2), size).argmax(dim=1).view(n_problems, n, *size)


def split_counts(stack: HeadStack, split: Split, grid) -> torch.Tensor:
    """Confusion counts [P, N, K, 3] of every head on a split, on the device."""
    n_problems, k = len(stack), stack.n_classes
    size = split.size
    out = []
    for chunk in image_chunks(len(split), n_problems * k * size[0] * size[1], split.device):
        pred = _argmax(stack, split.tokens.take(chunk), grid, size)
        target, valid = split.labels(chunk)
        n = len(target)
        counts = confusion_counts(
            pred.view(n_problems * n, *size),
            target.expand(n_problems, *target.shape).reshape(n_problems * n, *size),
            valid.expand(n_problems, *valid.shape).reshape(n_problems * n, *size),
            k,
            check=False,
        )
        out.append(counts.view(n_problems, n, k, 3))
    return torch.cat(out, dim=1)


def image_chunks(n: int, elements_per_image: int, device: torch.device) -> list[slice]:
    """Slices of images whose upsampled logits fit the scoring budget (at least one image)."""
    budget = _EVAL_ELEMENTS["cuda" if device.type == "cuda" else "cpu"]
    step = max(1, budget // max(1, elements_per_image))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]
