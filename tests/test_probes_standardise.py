"""Z-scoring with the training set's statistics, shared by the linear probe and the MLP."""

from __future__ import annotations

import numpy as np
import torch

from ultrabench_eval.probes.standardise import standardise, train_statistics


def test_standardise_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(4)
    train = rng.normal(3.0, 2.0, size=(50, 4))
    train[:, 2] = 7.0  # constant column -> std 1, not a division by zero
    other = rng.normal(-5.0, 9.0, size=(30, 4))
    tr, (ot,), mean, std = standardise(train, other)
    np.testing.assert_allclose(mean, train.mean(axis=0))
    np.testing.assert_allclose(std[[0, 1, 3]], train.std(axis=0)[[0, 1, 3]])
    assert std[2] == 1.0
    np.testing.assert_allclose(ot, (other - mean) / std)
    assert np.all(np.isfinite(tr)) and np.allclose(tr[:, 2], 0.0)


def test_standardise_leaves_its_inputs_alone() -> None:
    train = np.arange(12, dtype=np.float32).reshape(6, 2)
    train.flags.writeable = False  # a read-only map, as the feature cache hands out
    before = train.copy()
    standardise(train, train)
    np.testing.assert_array_equal(train, before)


def test_train_statistics_are_population_statistics() -> None:
    x = torch.tensor([[1.0, 5.0], [3.0, 5.0]], dtype=torch.float64)
    mean, std = train_statistics(x)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]  # column 2: constant
