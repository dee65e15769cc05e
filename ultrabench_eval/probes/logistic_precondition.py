"""Preconditioning the logistic objective: the same problem in variables where it is round.

Real image features are ill-conditioned: their covariance has a power-law spectrum, so at large
C the Hessian of the L2 logistic objective spans many orders of magnitude and plain L-BFGS needs
hundreds of iterations (as scikit-learn's does). The solver therefore works in variables u with
w = M u, where M scales each eigen-direction v_j of the training covariance by
1 / sqrt(kappa var_j + lam): the inverse square root of the Hessian there while the model
predicts near-uniform probabilities (kappa = (K - 1) / K^2, the cross-entropy's curvature at
uniform probabilities, lam the problem's penalty). Directions outside the features' row space
feel the penalty only and are scaled by 1 / sqrt(lam); the intercept by 1 / sqrt(kappa).

M is any invertible matrix as far as the optimum is concerned: the loss is still evaluated on w
in the original features, so the solution is the same problem's and the stopping test reads the
gradient in w (scikit-learn's `tol`). That is why the eigenvectors may come from a float32
decomposition, 4-5x cheaper than float64 on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch

from ultrabench_eval.probes.logistic_loss import BatchedLogisticLoss

__all__ = ["PreconditionedLoss", "Spectrum", "denormals_flushed", "spectral_basis"]


# Above this many dimensions only the leading eigen-directions are computed (a full float32
# eigendecomposition of a 1,764-d Gram matrix costs seconds of CPU; the top 512 by subspace
# iteration a fraction of one), and the rest share one scale: there the spectrum's tail is
# flat enough for L-BFGS's own curvature estimate.
FULL_SPECTRUM_MAX = 512
_POWER_ITERATIONS = 3
_OVERSAMPLE = 16


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """Treat denormal floats as zero meanwhile (then back to torch's default, off).

    An eigendecomposition of real features' covariance, whose spectrum decays over many orders
    of magnitude, runs into denormal float32 values; the CPU handles those in microcode, and
    the same decomposition takes 15 s instead of 1 s. Nothing here needs numbers that small.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class Spectrum(NamedTuple):
    """Leading eigen-directions of a training set's covariance."""

    basis: torch.Tensor  # [D, k], orthonormal columns (float32 accuracy)
    variance: torch.Tensor  # [k] their eigenvalues
    # mean eigenvalue of the directions the basis leaves out inside the row space (0 when
    # it leaves out none: what remains then feels the penalty only)
    rest: float


def spectral_basis(x: torch.Tensor) -> Spectrum:
    """The eigenvectors of x^T x / N for x [N, D], from the smaller of the two Gram matrices,
    in float32: all of them up to `FULL_SPECTRUM_MAX` dimensions (and only the row space when
    N < D), else the leading `FULL_SPECTRUM_MAX` by subspace iteration."""
    with denormals_flushed():
        return _spectral_basis(x)


def _spectral_basis(x: torch.Tensor) -> Spectrum:
    n, d = x.shape
    x32 = x.to(torch.float32)
    by_samples = d > n
    gram = x32 @ x32.T / n if by_samples else x32.T @ x32 / n
    size = gram.shape[0]
    if size <= FULL_SPECTRUM_MAX:
        variance, vectors = torch.linalg.eigh(gram)
        rest = 0.0
    else:
        variance, vectors = _leading_eigenpairs(gram, FULL_SPECTRUM_MAX)
        rest = max(float(torch.trace(gram) - variance.sum()) / (size - variance.shape[0]), 0.0)
    if by_samples:
        keep = variance > variance.max() * max(n, d) * torch.finfo(torch.float32).eps
        variance, vectors = variance[keep], vectors[:, keep]
        vectors = (x32.T @ vectors) / (variance * n).sqrt()  # the right singular vectors
    return Spectrum(vectors.to(x.dtype), variance.to(x.dtype).clamp_min(0.0), rest)


def _leading_eigenpairs(gram: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenpairs of a symmetric PSD matrix by randomised subspace iteration
    (Halko, Martinsson and Tropp 2011), from a fixed seed: the same input, the same output."""
    start = torch.randn(
        gram.shape[0], k + _OVERSAMPLE, generator=torch.Generator().manual_seed(0)
    ).to(gram.device)
    q = torch.linalg.qr(gram @ start).Q
    for _ in range(_POWER_ITERATIONS):
        q = torch.linalg.qr(gram @ q).Q
    variance, vectors = torch.linalg.eigh(q.T @ gram @ q)
    return variance[-k:], q @ vectors[:, -k:]


class PreconditionedLoss:
    """`loss` as a function of u (w = M u per problem, M symmetric): returns the objective, its
    gradient in u (M times the gradient in w), and the max-abs gradient in w for the stopping
    test. `spectra[s]`: `spectral_basis` of training set s. Of each set's G
    problems the first `preconditioned` use M, the others the identity (plain L-BFGS)."""

    def __init__(
        self,
        loss: BatchedLogisticLoss,
        spectra: list[Spectrum],
        n_classes: int,
        preconditioned: int,
    ) -> None:
        self.loss = loss
        self.bases = [s.basis for s in spectra]
        self.bases_t = [s.basis.T.contiguous() for s in spectra]  # the faster operand layout
        self.preconditioned = preconditioned
        kappa = (n_classes - 1) / n_classes**2
        self.intercept_scale = kappa**-0.5
        lam = loss.lam[:, :preconditioned]  # [S, G']
        # per set [G', k]: the scale of each eigen-direction; [S, G']: of the directions the
        # basis leaves out (the spectrum's tail, or those outside the row space)
        self.inside = [
            (kappa * s.variance[None, :] + lam[i, :, None]).rsqrt() for i, s in enumerate(spectra)
        ]
        rest = torch.tensor([s.rest for s in spectra], dtype=lam.dtype, device=lam.device)
        self.outside = (kappa * rest[:, None] + lam).rsqrt()
        self.full_rank = [s.basis.shape[1] == s.basis.shape[0] for s in spectra]

    def apply(self, u: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """M u for the problems `rows` (sorted), u [R, (D+1)*P]."""
        d1, p, g = self.loss.d1, self.loss.p, self.loss.g
        u3 = u.view(-1, d1, p)
        out = u3.clone()  # the identity, for the plain problems
        sets = torch.div(rows, g, rounding_mode="floor")
        slots = rows - sets * g
        used, counts = torch.unique_consecutive(sets, return_counts=True)
        start = 0
        for s, m in zip(used.tolist(), counts.tolist(), strict=True):
            # a set's preconditioned problems come first among its (sorted) rows
            k = int((slots[start : start + m] < self.preconditioned).sum())
            run = slice(start, start + k)
            start += m
            if k:
                out[run] = self._map(u3[run], s, slots[run])
        return out.view(-1, d1 * p)

    def _map(self, u3: torch.Tensor, s: int, slots: torch.Tensor) -> torch.Tensor:
        """M u for k problems of set s: u3 [k, D+1, P]."""
        k, _, p = u3.shape
        basis = self.bases[s]  # [D, r]
        d, r = basis.shape
        out = torch.empty_like(u3)
        out[:, -1, :] = u3[:, -1, :] * self.intercept_scale
        # every problem's columns side by side: one GEMM each way, not k thin products
        # contiguous: with P = 1 the reshape is a transposed view, and a product of two
        # transposed operands takes a slow path (10x here)
        block = u3[:, :-1, :].permute(1, 0, 2).reshape(d, k * p).contiguous()  # [D, k*P]
        coords = (self.bases_t[s] @ block).view(r, k, p)
        # M = V A V^T + b (I - V V^T) = b I + V (A - b) V^T: two GEMMs, not three
        scale = self.inside[s][slots].T  # [r, k]
        if self.full_rank[s]:
            mapped = basis @ (coords * scale[:, :, None]).view(r, k * p)
        else:
            rest = self.outside[s, slots]  # [k]
            mapped = basis @ (coords * (scale - rest)[:, :, None]).view(r, k * p)
            mapped += block * rest.repeat_interleave(p)
        out[:, :-1, :] = mapped.view(d, k, p).permute(1, 0, 2)
        return out

    def __call__(
        self, u: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        value, grad = self.loss(self.apply(u, rows), rows)
        return value, self.apply(grad, rows), grad.abs().amax(dim=1)
