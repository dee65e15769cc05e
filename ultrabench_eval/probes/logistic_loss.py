"""The L2 logistic-regression objective and its gradient, for many problems at once (torch).

The objective is scikit-learn's `LogisticRegression` (lbfgs, L2, unpenalised intercept) in its
scaled form

    sum_i w_i CE(x_i, y_i) / sum(w) + ||W||^2 / (2 C sum(w))

so that a tolerance on the max-abs gradient means the same thing as scikit-learn's `tol`. With two
classes the model is binomial (one weight vector, logits `[0, z]`), exactly as scikit-learn fits
it; with K > 2 it is the symmetric multinomial with K weight vectors. This is the only place the
objective is written: the solver minimises it and the diagnostics of both backends evaluate it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["BatchedLogisticLoss"]

# Above this many values in one set's design matrix, its GEMMs are big enough that a Python loop
# over the sets costs nothing next to them, and it wastes no work on padding.
_PER_SET_GEMM_ABOVE = 1_000_000


class BatchedLogisticLoss:
    """Scaled objective and gradient of S training sets x G values of C.

    Training set s has its own design matrix x1[s] [N, D+1] (zero-padded rows carry zero
    sample weight); its G problems share it through one batched GEMM each way. A problem's
    flat weights are its `[D+1, P]` matrix: the coefficients transposed, then the intercept row.
    """

    def __init__(
        self, x1: torch.Tensor, y: torch.Tensor, sw: torch.Tensor, lam: torch.Tensor, k: int
    ):
        self.x1 = x1  # [S, N, D+1], last column = 1 (intercept)
        self.x1t = x1.transpose(1, 2).contiguous()
        self.sw = sw  # [S, N] sample weights / their sum per set
        self.s, self.n, self.d1 = x1.shape
        self.g = lam.shape[1]
        self.lam = lam  # [S, G] the penalty of each (set, C)
        self.p = 1 if k == 2 else k
        self.y = y  # [S, N] int64 compact labels
        self.onehot = torch.nn.functional.one_hot(y, k).to(x1.dtype)  # [S, N, K]
        # Penalise the weights, not the intercept (the last row of each problem's [D+1, P]).
        penalised = torch.ones(self.d1, self.p, dtype=x1.dtype, device=x1.device)
        penalised[-1] = 0.0
        self.penalty = lam.reshape(self.s * self.g, 1, 1) * penalised  # [S*G, D+1, P]

    @classmethod
    def from_sets(
        cls,
        xs: Sequence[torch.Tensor],
        ys: Sequence[np.ndarray],
        sample_weights: Sequence[np.ndarray | None],
        Cs: Sequence[float],
        n_classes: int,
    ) -> BatchedLogisticLoss:
        """The loss of every (set, C): `xs[s]` float64 [N_s, D_s] on the device the loss is to
        live on, `ys[s]` compact labels, `sample_weights[s]` (None: all 1)."""
        dt = torch.float64
        dev = xs[0].device
        n_max = max(x.shape[0] for x in xs)
        d_max = max(x.shape[1] for x in xs)
        n_sets = len(xs)
        # Pad every set to [n_max, d_max]: padded rows have zero weight, padded columns are zero
        # features whose weights only feel the penalty and so stay at zero.
        x1 = torch.zeros(n_sets, n_max, d_max + 1, dtype=dt, device=dev)
        y_pad = torch.zeros(n_sets, n_max, dtype=torch.long, device=dev)
        sw = torch.zeros(n_sets, n_max, dtype=dt, device=dev)
        sw_sums = []
        for i, (x, y, w) in enumerate(zip(xs, ys, sample_weights, strict=True)):
            n, d = x.shape
            x1[i, :n, :d] = x
            x1[i, :n, -1] = 1.0
            y_pad[i, :n] = torch.as_tensor(np.asarray(y, dtype=np.int64), device=dev)
            w_np = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
            sw_sums.append(float(w_np.sum()))
            sw[i, :n] = torch.as_tensor(w_np / w_np.sum(), dtype=dt, device=dev)
        cs = torch.as_tensor(np.asarray(Cs, dtype=np.float64), dtype=dt, device=dev)
        lam = 1.0 / (cs.view(1, -1) * torch.tensor(sw_sums, dtype=dt, device=dev).view(-1, 1))
        return cls(x1, y_pad, sw, lam, int(n_classes))

    def __call__(self, w: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective [R] and gradient [R, (D+1)*P] of problems `rows` (indices s*G + c, sorted)
        at their flat weights `w` [R, (D+1)*P].

        Only the sets with a problem in `rows` enter the GEMMs, each with as many columns as
        the set with the most such problems (the others padded): problems that have converged
        cost nothing.
        """
        n, d1, g, p = self.n, self.d1, self.g, self.p
        sets = torch.div(rows, g, rounding_mode="floor")
        if n * d1 >= _PER_SET_GEMM_ABOVE:
            return self._per_set(w, rows, sets)
        used, per_set = torch.unique_consecutive(sets, return_counts=True)
        width = int(per_set.max())
        # slot of each row inside its set's block of `width` columns
        starts = torch.cumsum(per_set, 0) - per_set
        slot = torch.arange(len(rows), device=rows.device) - torch.repeat_interleave(
            starts, per_set
        )
        block = torch.repeat_interleave(torch.arange(len(used), device=rows.device), per_set)
        s = len(used)
        w3 = w.view(-1, d1, p)
        ws = w3.new_zeros(s, width, d1, p)
        ws[block, slot] = w3
        x1, x1t = self._design(used)
        z = torch.bmm(x1, ws.permute(0, 2, 1, 3).reshape(s, d1, width * p)).view(s, n, width, p)
        sw = self.sw[used]
        ce, resid = _cross_entropy_parts(z, self.y[used], self.onehot[used], sw)
        ce = torch.einsum("sn,snw->sw", sw, ce)[block, slot]
        reg = self.penalty[rows] * w3
        value = ce + 0.5 * (reg * w3).sum(dim=(1, 2))
        grad = torch.bmm(x1t, resid.reshape(s, n, width * p)).view(s, d1, width, p)
        grad = grad.permute(0, 2, 1, 3)[block, slot]
        return value, (grad + reg).reshape(len(rows), d1 * p)

    def _per_set(
        self, w: torch.Tensor, rows: torch.Tensor, sets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One GEMM pair per set, over its live problems only: for large sets, where padding
        sets to a common width or copying design matrices would cost more than the loop."""
        n, d1, p = self.n, self.d1, self.p
        w3 = w.view(-1, d1, p)
        value = w.new_empty(len(rows))
        grad = w.new_empty(len(rows), d1, p)
        # `rows` is sorted, so each set's problems are one contiguous run: slices, not gathers
        used, counts = torch.unique_consecutive(sets, return_counts=True)
        start = 0
        for s, m in zip(used.tolist(), counts.tolist(), strict=True):
            run = slice(start, start + m)
            start += m
            ws = w3[run]
            z = (self.x1[s] @ ws.permute(1, 0, 2).reshape(d1, m * p)).view(n, m, p)
            sw = self.sw[s]
            ce, resid = _cross_entropy_parts(z, self.y[s], self.onehot[s], sw)
            reg = self.penalty[rows[run]] * ws
            value[run] = sw @ ce + 0.5 * (reg * ws).sum(dim=(1, 2))
            data = (self.x1t[s] @ resid.reshape(n, m * p)).view(d1, m, p).permute(1, 0, 2)
            torch.add(data, reg, out=grad[run])
        return value, grad.reshape(len(rows), d1 * p)

    def _design(self, used: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The design matrices of the sets `used` (views when every set is: no copy)."""
        if len(used) == self.s:
            return self.x1, self.x1t
        return self.x1.index_select(0, used), self.x1t.index_select(0, used)


def _cross_entropy_parts(
    z: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, sw: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the logits z [..., N, m, P] of m problems sharing the labels y [..., N] (one-hot
    [..., N, K]) and sample weights sw [..., N]: each sample's cross-entropy [..., N, m], and
    the weighted residual (softmax - one-hot) * sw [..., N, m, P] the gradient is made of."""
    binomial = z.shape[-1] == 1
    if binomial:  # class 0 is the reference with logit 0
        z = torch.cat([torch.zeros_like(z), z], dim=-1)
    lse, probs = _log_softmax_parts(z, dim=-1)
    z_true = z.gather(-1, y[..., None, None].expand(*z.shape[:-1], 1)).squeeze(-1)
    resid = probs.sub_(onehot.unsqueeze(-2)).mul_(sw[..., None, None])
    if binomial:
        resid = resid[..., 1:]
    return lse - z_true, resid


def _log_softmax_parts(z: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp of z along `dim`, and the softmax: one exp pass for both."""
    top = z.amax(dim=dim, keepdim=True)
    e = (z - top).exp_()
    total = e.sum(dim=dim, keepdim=True)
    return (top + total.log()).squeeze(dim), e.div_(total)
