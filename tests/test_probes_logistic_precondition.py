"""The preconditioner changes the variables, never the problem: same optimum, fewer steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultrabench_eval.probes.logistic import fit_logistic_sets
from ultrabench_eval.probes.logistic_precondition import spectral_basis
from ultrabench_eval.probes.standardise import standardise


def correlated(n: int, d: int, k: int, seed: int = 0, decay: float = 2.0):
    """Standardised features with a power-law spectrum and correlated columns, and labels that
    depend on low-variance directions too (the ill-conditioned case)."""
    rng = np.random.default_rng(seed)
    sigma = np.arange(1, d + 1) ** (-decay / 2)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    means = rng.normal(size=(k, d)) * sigma * 1.5
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    x = (means[y] + rng.normal(size=(n, d)) * sigma) @ rotation.T
    return standardise(x)[0], y


@pytest.mark.parametrize("shape", [(200, 12), (30, 50)])
def test_the_basis_diagonalises_the_covariance(shape: tuple[int, int]) -> None:
    x, _ = correlated(*shape, k=2)
    xt = torch.as_tensor(x)
    basis, variance, _ = spectral_basis(xt)
    r = min(shape)
    assert basis.shape[1] <= r and variance.shape == (basis.shape[1],)
    # orthonormal columns (to float32 accuracy) that diagonalise x^T x / N
    eye = torch.eye(basis.shape[1], dtype=torch.float64)
    assert torch.allclose(basis.T @ basis, eye, atol=1e-4)
    projected = basis.T @ (xt.T @ xt / shape[0]) @ basis
    assert torch.allclose(projected, torch.diag(variance), atol=1e-5 * float(variance.max()))
    # the basis spans the row space: x is reproduced from its coordinates
    assert torch.allclose(xt @ basis @ basis.T, xt, atol=1e-3)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("shape", [(300, 20), (40, 60)])
def test_same_optimum_with_and_without_preconditioning(k: int, shape: tuple[int, int]) -> None:
    xs, ys = zip(*(correlated(*shape, k=k, seed=s) for s in range(2)), strict=True)
    grid = [1e-3, 1.0, 100.0]
    pre = fit_logistic_sets(xs, ys, grid, n_classes=k, tol=1e-9, max_iter=5000)
    plain = fit_logistic_sets(
        xs, ys, grid, n_classes=k, tol=1e-9, max_iter=5000, precondition=False
    )
    for a, b in zip(pre, plain, strict=True):
        assert a.converged.all() and b.converged.all()
        assert np.all(a.grad_max <= 1e-9)
        np.testing.assert_allclose(a.objective, b.objective, rtol=1e-9)
        np.testing.assert_allclose(a.coef, b.coef, atol=1e-5 * max(1.0, np.abs(b.coef).max()))
        # with K > 2 the intercepts are defined up to a shared constant (they are not
        # penalised, and softmax ignores a shift): compare them centred
        centred = [
            f.intercept - f.intercept.mean(1, keepdims=True) if k > 2 else f.intercept
            for f in (a, b)
        ]
        np.testing.assert_allclose(*centred, atol=1e-4)


def realistic(n: int, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes on a power-law spectrum, as real image features are."""
    from benchmarks.workloads import realistic_features

    x, y = realistic_features((n,), d, k, seed=0)
    return standardise(x)[0], y


def test_real_like_features_converge_in_far_fewer_iterations() -> None:
    x, y = realistic(1500, 64, 3)
    grid = [1.0, 100.0]
    fast = fit_logistic_sets([x], [y], grid, n_classes=3, tol=1e-6, max_iter=5000)[0]
    plain = fit_logistic_sets(
        [x], [y], grid, n_classes=3, tol=1e-6, max_iter=5000, precondition=False
    )[0]
    assert fast.converged.all() and plain.converged.all()
    assert np.all(4 * fast.iterations < plain.iterations)


def test_slow_problems_race_plain_lbfgs() -> None:
    """On nearly separable classes the data's curvature is not the covariance's and plain
    L-BFGS can be quicker: a problem the preconditioned copy has not solved within
    ALONE_ITERATIONS races its plain twin from there, and the first to converge is kept."""
    from ultrabench_eval.probes.logistic import ALONE_ITERATIONS

    x, y = correlated(400, 40, 3, decay=3.0)
    grid = [1e-2, 1.0, 100.0]
    raced = fit_logistic_sets([x], [y], grid, n_classes=3, tol=1e-6, max_iter=5000)[0]
    plain = fit_logistic_sets(
        [x], [y], grid, n_classes=3, tol=1e-6, max_iter=5000, precondition=False
    )[0]
    assert raced.converged.all() and np.all(raced.grad_max <= 1e-6)
    assert raced.iterations.max() > ALONE_ITERATIONS  # the race did happen
    assert np.all(raced.iterations <= ALONE_ITERATIONS + plain.iterations)
    np.testing.assert_allclose(raced.objective, plain.objective, rtol=1e-4)


@pytest.mark.parametrize("shape", [(300, 40), (40, 60)])
def test_leading_directions_only_give_the_same_optimum(monkeypatch, shape) -> None:
    """Above FULL_SPECTRUM_MAX dimensions only the leading eigen-directions are computed; the
    rest share one scale. Still the same problem, solved to the same point."""
    import ultrabench_eval.probes.logistic_precondition as precondition

    x, y = correlated(*shape, k=3)
    grid = [1e-2, 10.0]
    monkeypatch.setattr(precondition, "FULL_SPECTRUM_MAX", 8)
    spectrum = precondition.spectral_basis(torch.as_tensor(x))
    assert spectrum.basis.shape[1] == 8 and spectrum.rest > 0
    partial = fit_logistic_sets([x], [y], grid, n_classes=3, tol=1e-9, max_iter=5000)[0]
    plain = fit_logistic_sets(
        [x], [y], grid, n_classes=3, tol=1e-9, max_iter=5000, precondition=False
    )[0]
    assert partial.converged.all()
    np.testing.assert_allclose(partial.objective, plain.objective, rtol=1e-9)
    np.testing.assert_allclose(partial.coef, plain.coef, atol=1e-5 * np.abs(plain.coef).max())
