"""The one logistic objective: value and gradient against autograd of a plain formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultrabench_eval.probes import logistic_loss
from ultrabench_eval.probes.logistic_loss import BatchedLogisticLoss


def plain_objective(x, y, coef, intercept, C, w):
    """scikit-learn's scaled objective, written out for one problem (coef [P, D])."""
    z = x @ coef.T + intercept
    if coef.shape[0] == 1:
        z = torch.cat([torch.zeros_like(z), z], dim=1)
    ce = torch.logsumexp(z, dim=1) - z[torch.arange(len(y)), y]
    return (w @ ce) / w.sum() + 0.5 * (coef * coef).sum() / (C * w.sum())


def problem(k: int, seed: int):
    rng = np.random.default_rng(seed)
    sets = []
    for n, d in ((30, 5), (22, 4)):  # sets of different sizes: padding is exercised
        y = rng.integers(0, k, n)
        y[:k] = np.arange(k)
        sets.append((torch.tensor(rng.normal(size=(n, d))), y, rng.uniform(0.5, 2.0, n)))
    return sets


@pytest.mark.parametrize("per_set", [False, True])
@pytest.mark.parametrize("k", [2, 4])
def test_value_and_gradient_match_the_formula(monkeypatch, k: int, per_set: bool) -> None:
    if per_set:  # the loop over sets used for large design matrices
        monkeypatch.setattr(logistic_loss, "_PER_SET_GEMM_ABOVE", 0)
    sets = problem(k, seed=k)
    Cs = [0.1, 3.0]
    loss = BatchedLogisticLoss.from_sets(
        [x for x, _, _ in sets], [y for _, y, _ in sets], [w for _, _, w in sets], Cs, k
    )
    p = 1 if k == 2 else k
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.normal(size=(len(sets) * len(Cs), loss.d1 * p)))
    rows = torch.tensor([0, 1, 3])  # one problem of set 1 has converged: left out
    value, grad = loss(w[rows], rows)
    for r, row in enumerate(rows.tolist()):
        x, y, sw = sets[row // len(Cs)]
        # a set narrower than the widest has zero features to the width (penalised weights)
        x = torch.cat([x, x.new_zeros(len(x), loss.d1 - 1 - x.shape[1])], dim=1)
        flat = w[row].clone().requires_grad_(True)
        w3 = flat.view(loss.d1, p)
        C = Cs[row % len(Cs)]
        f = plain_objective(x, torch.tensor(y), w3[:-1].T, w3[-1], C, torch.tensor(sw))
        (g,) = torch.autograd.grad(f, flat)
        assert value[r].item() == pytest.approx(f.item(), rel=1e-12)
        torch.testing.assert_close(grad[r], g)
