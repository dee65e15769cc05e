"""Label budgets: how many training labels a probe gets, as stratified, nested subsets.

For one seed, each class's training examples are put in a random order once. A fraction takes
the first `max(1, round(fraction * n_class))` of them; K shots take the first `min(K, n_class)`.
So the 5 % subset of a seed contains its 1 % subset (and its 5-shot subset its 1-shot one), every
class keeps at least one example, and class proportions are kept. Validation and test sets are
never subsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The US-JEPA (2026) few-shot sweep: 100, 50, 10, 5 and 1 % of the training labels.
DEFAULT_FRACTIONS = (1.0, 0.5, 0.1, 0.05, 0.01)
_STREAM = 0x5EED  # separates these draws from any other use of the same seed


@dataclass(frozen=True)
class Budget:
    """A fraction of the training labels (0 < fraction <= 1) or K labels per class."""

    fraction: float | None = None
    shots: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.shots is None):
            raise ValueError("a budget is a fraction or a number of shots, not both")
        if self.fraction is not None and not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.shots is not None and self.shots < 1:
            raise ValueError(f"shots must be at least 1, got {self.shots}")

    @classmethod
    def of(cls, fraction: float | None, shots: int | None) -> Budget:
        """The budget a result record names: its shots when it has them, else its fraction
        (records that name neither used every training label)."""
        if shots:
            return cls(shots=int(shots))
        return cls(fraction=float(fraction or 1.0))

    @property
    def is_full(self) -> bool:
        return self.fraction == 1.0

    @property
    def label(self) -> str:
        """'100%', '5%', '10-shot': in protocol ids and records."""
        if self.shots is not None:
            return f"{self.shots}-shot"
        return fraction_label(self.fraction)

    @property
    def row_label(self) -> str:
        """'100 %', '5 %', '10-shot': a row of the few-shot table."""
        if self.shots is not None:
            return f"{self.shots}-shot"
        return f"{self.fraction * 100:g} %"

    @property
    def description(self) -> str:
        """'all training labels', '10 % of the training labels', '5 training labels per class'."""
        if self.shots is not None:
            return f"{self.shots} training labels per class"
        if self.is_full:
            return "all training labels"
        return f"{self.fraction * 100:g} % of the training labels"

    @property
    def axis_value(self) -> float:
        """Where a plot puts it: % of the training labels, or labels per class."""
        return float(self.shots) if self.shots is not None else 100.0 * self.fraction

    @property
    def largest_first(self) -> tuple[int, float]:
        """Sort key as tables read: fractions from all labels down, then shots from many to
        few."""
        kind, size = self._kind_and_size()
        return (kind, -size)

    @property
    def smallest_first(self) -> tuple[int, float]:
        """Sort key of a few-shot curve: fractions from the fewest labels up, then shots from
        one up."""
        return self._kind_and_size()

    def _kind_and_size(self) -> tuple[int, float]:
        if self.shots is not None:
            return (1, float(self.shots))
        return (0, self.fraction)

    def indices(self, labels: np.ndarray, seed: int, n_classes: int) -> np.ndarray:
        """Sorted indices of this budget's subset of `labels` for `seed`."""
        labels = np.asarray(labels)
        if self.is_full:
            return np.arange(len(labels))
        orders = class_orders(labels, n_classes, seed)
        picked = [order[: self._take(len(order))] for order in orders]
        return np.sort(np.concatenate(picked))

    def _take(self, available: int) -> int:
        if self.shots is not None:
            return min(self.shots, available)
        return min(available, max(1, round(self.fraction * available)))


def budgets(fractions: tuple[float, ...] = (), shots: tuple[int, ...] = ()) -> list[Budget]:
    return [Budget(fraction=f) for f in fractions] + [Budget(shots=k) for k in shots]


def class_orders(labels: np.ndarray, n_classes: int, seed: int) -> list[np.ndarray]:
    """Per class, its example indices in this seed's random order."""
    rng = np.random.default_rng([seed, _STREAM])
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(n_classes)]


def subsample(labels: np.ndarray, fraction: float, seed: int, n_classes: int) -> np.ndarray:
    """Sorted indices of the stratified `fraction` subset for `seed`."""
    return Budget(fraction=fraction).indices(labels, seed, n_classes)


def fraction_label(fraction: float) -> str:
    """1.0 -> '100%', 0.05 -> '5%'."""
    return f"{fraction * 100:g}%"
