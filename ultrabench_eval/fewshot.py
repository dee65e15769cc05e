"""Label fractions: stratified, nested training subsets.

For one seed, each class's training examples are put in a random order once; a fraction takes
the first `max(1, round(fraction * n_class))` of them. So the 5 % subset of a seed contains its
1 % subset, every class keeps at least one example, and class proportions are kept.
"""

from __future__ import annotations

import numpy as np

_STREAM = 0x5EED  # separates these draws from any other use of the same seed


def class_orders(labels: np.ndarray, n_classes: int, seed: int) -> list[np.ndarray]:
    """Per class, its example indices in this seed's random order."""
    rng = np.random.default_rng([seed, _STREAM])
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(n_classes)]


def subsample(labels: np.ndarray, fraction: float, seed: int, n_classes: int) -> np.ndarray:
    """Sorted indices of the stratified `fraction` subset for `seed`."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    if fraction == 1.0:
        return np.arange(len(labels))
    picked = [
        order[: max(1, round(fraction * len(order)))]
        for order in class_orders(labels, n_classes, seed)
        if len(order)
    ]
    return np.sort(np.concatenate(picked))


def fraction_label(fraction: float) -> str:
    """1.0 -> '100%', 0.05 -> '5%'."""
    return f"{fraction * 100:g}%"
