"""Z-scoring features with the training set's statistics, for every probe that standardises."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["standardise", "train_statistics"]


def train_statistics(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and population std of `train` [N, D] (float64 in, float64 out); a
    constant column gets std 1, so it stays finite (it becomes 0) once scaled."""
    mean = train.mean(dim=0)
    std = train.std(dim=0, correction=0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def standardise(
    train_x: np.ndarray, *others: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Z-score every array with the TRAIN mean and (population) std; zero-std columns keep std 1.

    Returns `(train_std, [others_std...], mean, std)`, all float64.
    """
    # torch, for its threads: numpy runs these passes over the (large) train matrix on one core.
    # torch.tensor copies, so the caller's arrays (perhaps read-only maps) are never touched.
    train = torch.tensor(np.asarray(train_x), dtype=torch.float64)
    mean, std = train_statistics(train)

    def scale(x: torch.Tensor) -> np.ndarray:
        return x.sub_(mean).div_(std).numpy()

    scaled = [scale(torch.tensor(np.asarray(o), dtype=torch.float64)) for o in others]
    return scale(train), scaled, mean.numpy(), std.numpy()
