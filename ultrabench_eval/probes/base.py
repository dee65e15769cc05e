"""What every probe takes and returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BatchedProbe", "Probe", "ProbeResult"]


@dataclass
class ProbeResult:
    """One probe fit: predictions for validation and test, their macro-F1 (x100), diagnostics."""

    test_pred: np.ndarray  # int64 [N_test]
    val_pred: np.ndarray  # int64 [N_val]
    test_macro_f1: float  # x100
    val_macro_f1: float  # x100
    params: dict[str, Any] = field(default_factory=dict)  # chosen hyper-parameters, JSON-safe
    seconds: float = 0.0


class Probe(ABC):
    """A classifier trained on frozen features.

    Hyper-parameters are chosen on validation only; `test_y` is used solely to score the final
    test predictions and must never influence fitting or selection.
    """

    name: str
    # False when the fit ignores the seed (a convex, deterministic fit): then equal training
    # subsets need one fit between them.
    uses_seed: bool = True
    # True when the probe reads patch tokens [N, T, D] instead of pooled vectors [N, D]
    needs_tokens: bool = False

    @abstractmethod
    def fit_predict(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        *,
        n_classes: int,
        seed: int = 0,
    ) -> ProbeResult:
        """Fit on train, select on val, predict val and test. Labels are ints in [0, n_classes)."""

    def fit_predict_subsets(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        subsets: Sequence[np.ndarray],
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        *,
        n_classes: int,
        seeds: Sequence[int],
    ) -> list[ProbeResult]:
        """One fit per training subset (indices into train) with its seed. Probes that can fit
        many subsets at once override this; the default fits them one after another."""
        return [
            self.fit_predict(
                train_x[idx],
                train_y[idx],
                val_x,
                val_y,
                test_x,
                test_y,
                n_classes=n_classes,
                seed=seed,
            )
            for idx, seed in zip(subsets, seeds, strict=True)
        ]


class BatchedProbe(Probe):
    """A probe that fits many training subsets in one batch: it implements
    `fit_predict_subsets`, and a single fit is the batch of one subset, all of train."""

    @abstractmethod
    def fit_predict_subsets(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        subsets: Sequence[np.ndarray],
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        *,
        n_classes: int,
        seeds: Sequence[int],
    ) -> list[ProbeResult]: ...

    def fit_predict(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        *,
        n_classes: int,
        seed: int = 0,
    ) -> ProbeResult:
        everything = np.arange(np.asarray(train_y).shape[0])
        return self.fit_predict_subsets(
            train_x,
            train_y,
            [everything],
            val_x,
            val_y,
            test_x,
            test_y,
            n_classes=n_classes,
            seeds=[seed],
        )[0]
