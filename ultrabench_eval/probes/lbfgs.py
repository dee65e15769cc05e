"""Batched L-BFGS: G independent smooth problems minimised together, one tensor op at a time.

Each problem keeps its own curvature history, step size, line search and convergence flag; the
problems share every tensor operation, so a grid of regularisation strengths costs about what
one problem costs. The inverse-Hessian product uses the compact representation of Byrd,
Nocedal and Schnabel (1994), a handful of batched matrix products instead of the two-loop
recursion's 4m small operations per iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# objective(w [R, n], rows [R]) -> (f [R], gradient [R, n]) for the problems `rows`, or
# (f, gradient, size [R]) where the stopping test is to read another measure than the gradient's
# max-abs entry (a preconditioned objective: the gradient in the original variables)
Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def _evaluate(
    objective: Objective, w: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(f, gradient, size) of the problems `rows` at w."""
    out = objective(w, rows)
    if len(out) == 3:
        return out[0], out[1], out[2]
    return out[0], out[1], out[1].abs().amax(dim=1)


_C1 = 1e-4  # sufficient-decrease constant of the Armijo test
_MAX_LINE_SEARCH = 40
# Near the optimum f stops changing in float64 before the gradient reaches `tol`; there a step
# is judged by the directional derivative instead (Hager-Zhang approximate Armijo, exact for
# quadratics), which stays accurate far below f's round-off.
_F_NOISE = 1e-12


@dataclass
class BatchedMinimum:
    w: torch.Tensor  # [G, n]
    f: torch.Tensor  # [G]
    g: torch.Tensor  # [G, n]
    iterations: torch.Tensor  # [G] accepted steps per problem
    converged: torch.Tensor  # [G] bool: size <= tol
    size: torch.Tensor  # [G] what the stopping test read: by default the max-abs gradient


class _History:
    """The last m (s, y) pairs of each problem, in circular slots, with their ages."""

    def __init__(self, g: int, n: int, m: int, like: torch.Tensor):
        self.s = like.new_zeros(g, m, n)
        self.y = like.new_zeros(g, m, n)
        # Time stamp of each slot; -1 marks an empty slot (its s and y are zero).
        self.stamp = torch.full((g, m), -1, dtype=torch.long, device=like.device)
        self.head = torch.zeros(g, dtype=torch.long, device=like.device)
        self.gamma = like.new_ones(g)
        self.m = m

    def push(self, rows: torch.Tensor, s: torch.Tensor, y: torch.Tensor, now: int) -> None:
        slot = self.head[rows]
        self.s[rows, slot] = s
        self.y[rows, slot] = y
        self.stamp[rows, slot] = now
        self.head[rows] = (slot + 1) % self.m
        self.gamma[rows] = (s * y).sum(1) / (y * y).sum(1)

    def clear(self, rows: torch.Tensor) -> None:
        self.s[rows] = 0.0
        self.y[rows] = 0.0
        self.stamp[rows] = -1
        self.gamma[rows] = 1.0

    def has_pairs(self) -> torch.Tensor:
        return (self.stamp >= 0).any(dim=1)

    def inverse_hessian_times(self, g: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """H g for the problems `rows` (g: [R, n]), H the L-BFGS inverse-Hessian estimate
        (compact form). Only their histories are read: converged problems cost nothing."""
        if rows.numel() == self.s.shape[0]:
            hist_s, hist_y, stamp, gamma = self.s, self.y, self.stamp, self.gamma
        else:
            hist_s, hist_y = self.s[rows], self.y[rows]
            stamp, gamma = self.stamp[rows], self.gamma[rows]
        order = torch.argsort(stamp, dim=1)  # oldest first; empty slots sort first
        s_y = torch.bmm(hist_s, hist_y.transpose(1, 2))  # [R, m, m], slot order
        y_y = torch.bmm(hist_y, hist_y.transpose(1, 2))
        s_y = _permute2(s_y, order)
        y_y = _permute2(y_y, order)
        gamma = gamma.view(-1, 1)
        u = torch.gather(torch.bmm(hist_s, g.unsqueeze(2)).squeeze(2), 1, order)
        v = gamma * torch.gather(torch.bmm(hist_y, g.unsqueeze(2)).squeeze(2), 1, order)
        empty = torch.gather(stamp, 1, order) < 0
        diag = torch.diagonal(s_y, dim1=1, dim2=2)
        r = torch.triu(s_y)
        # An empty slot's row and column are zero; a unit diagonal keeps R invertible and the
        # slot inert.
        r = r + torch.diag_embed(empty.to(r.dtype))
        p = torch.linalg.solve_triangular(r, u.unsqueeze(2), upper=True)
        inner = (torch.diag_embed(diag) + gamma.unsqueeze(2) * y_y) @ p - v.unsqueeze(2)
        top = torch.linalg.solve_triangular(r.transpose(1, 2), inner, upper=False).squeeze(2)
        bottom = -p.squeeze(2)
        # Back from chronological to slot order.
        top_slots = torch.zeros_like(top).scatter_(1, order, top)
        bottom_slots = torch.zeros_like(bottom).scatter_(1, order, bottom)
        return (
            gamma * g
            + torch.bmm(top_slots.unsqueeze(1), hist_s).squeeze(1)
            + gamma * torch.bmm(bottom_slots.unsqueeze(1), hist_y).squeeze(1)
        )


def _permute2(matrix: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """matrix[b][order[b]][:, order[b]] for every b."""
    m = order.shape[1]
    rows = torch.gather(matrix, 1, order.unsqueeze(2).expand(-1, -1, m))
    return torch.gather(rows, 2, order.unsqueeze(1).expand(-1, m, -1))


def minimize_batched(
    objective: Objective,
    w0: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
    history: int = 10,
    twins: torch.Tensor | None = None,
    only: torch.Tensor | None = None,
) -> BatchedMinimum:
    """Minimise G problems from `w0` [G, n]; `objective(w, rows)` returns (f, gradient) of the
    problems `rows` at their weights `w`, so only problems still searching are evaluated.

    A problem stops when its gradient's size (the max-abs entry, or the objective's own third
    output) is <= `tol`, or when two line searches in a row find no acceptable step (the
    round-off floor); its weights then stay fixed. `twins` [G] (optional): the index of each
    problem's twin, the same problem in other variables; a problem stops as soon as its twin
    has converged (a race: the caller keeps the winner). `only` [G] bool (optional): the
    problems to solve; the others are neither evaluated nor changed (their size reads inf).
    """
    w = w0.clone()
    n_problems, n = w.shape
    solved = torch.arange(n_problems, device=w.device)
    if only is not None:
        solved = torch.nonzero(only).squeeze(1)
    f = w.new_zeros(n_problems)
    g = torch.zeros_like(w)
    size = w.new_full((n_problems,), float("inf"))
    f[solved], g[solved], size[solved] = _evaluate(objective, w[solved], solved)
    hist = _History(n_problems, n, history, w)
    iterations = torch.zeros(n_problems, dtype=torch.long, device=w.device)
    fails = torch.zeros_like(iterations)
    active = size > tol
    if only is not None:
        active &= only
    if twins is not None:
        active &= size[twins] > tol

    for now in range(max_iter):
        # Every tensor of the iteration covers the live problems only: late in a C grid a
        # handful of large-C problems remain, and the rest must cost nothing.
        live = torch.nonzero(active).squeeze(1)
        if live.numel() == 0:
            break
        g_live = g[live]
        direction = -hist.inverse_hessian_times(g_live, live)
        # Not a descent direction (round-off in a stale history): use steepest descent.
        bad = (g_live * direction).sum(dim=1) >= 0
        direction = torch.where(bad.unsqueeze(1), -g_live, direction)
        slope = (g_live * direction).sum(dim=1)
        # Without curvature information, start with a unit-length move (as L-BFGS-B does).
        step = torch.where(
            hist.has_pairs()[live],
            torch.ones_like(slope),
            torch.clamp(1.0 / g_live.norm(dim=1).clamp_min(1e-300), max=1.0),
        )
        w_live = w[live]
        w_new, f_new, g_new, size_new, accepted = _line_search(
            objective, live, w_live, f[live], g_live, direction, slope, step
        )
        if bool(accepted.any()):
            rows = live[accepted]
            s_vec = w_new[accepted] - w_live[accepted]
            y_vec = g_new[accepted] - g_live[accepted]
            sy = (s_vec * y_vec).sum(dim=1)
            yy = (y_vec * y_vec).sum(dim=1)
            # Keep a pair only with safely positive curvature.
            good = sy > 1e-10 * yy
            if bool(good.any()):
                hist.push(rows[good], s_vec[good], y_vec[good], now)
            moved = s_vec.abs().amax(dim=1) > 0
            w[rows], f[rows], g[rows] = w_new[accepted], f_new[accepted], g_new[accepted]
            size[rows] = size_new[accepted]
            iterations[rows] += 1
            fails[rows[moved]] = 0
            fails[rows[~moved]] += 1
        failed = live[~accepted]
        if failed.numel():
            # No acceptable step: drop the history and retry along the gradient; a second
            # failure in a row means the round-off floor is reached, so the problem stops.
            fails[failed] += 1
            hist.clear(failed)
        active[live] = (size[live] > tol) & (fails[live] < 2)
        if twins is not None:
            active &= size[twins] > tol

    return BatchedMinimum(w, f, g, iterations, size <= tol, size)


def _line_search(
    objective: Objective,
    ids: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor,
    g: torch.Tensor,
    direction: torch.Tensor,
    slope: torch.Tensor,
    step: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backtracking for the live problems `ids` (their rows of w, f, g, ...), each with its own
    step; a round evaluates only the problems still searching."""
    searching = torch.ones_like(slope, dtype=torch.bool)
    accepted = torch.zeros_like(searching)
    w_new, f_new, g_new = w.clone(), f.clone(), g.clone()
    size_new = f.new_zeros(f.shape)
    step = step.clone()
    for _ in range(_MAX_LINE_SEARCH):
        rows = torch.nonzero(searching).squeeze(1)
        if rows.numel() == 0:
            break
        t, d0, f0 = step[rows], slope[rows], f[rows]
        move = direction[rows]
        w_try = w[rows] + t.unsqueeze(1) * move
        f_try, g_try, size_try = _evaluate(objective, w_try, ids[rows])
        d_try = (g_try * move).sum(dim=1)
        armijo = f_try <= f0 + _C1 * t * d0
        approx = (f_try <= f0 + _F_NOISE * f0.abs()) & (d_try <= (2 * _C1 - 1) * d0)
        ok = (armijo | approx) & torch.isfinite(f_try)
        done = rows[ok]
        w_new[done], f_new[done], g_new[done] = w_try[ok], f_try[ok], g_try[ok]
        size_new[done] = size_try[ok]
        accepted[done] = True
        searching[done] = False
        # Shrink to the minimiser of the quadratic matching phi'(0) and phi'(t), kept in
        # [0.1 t, 0.5 t] so the search neither stalls nor overshoots.
        secant = t * d0 / (d0 - d_try)
        secant = torch.where(torch.isfinite(secant) & (d_try > d0), secant, 0.5 * t)
        shrunk = torch.minimum(torch.maximum(secant, 0.1 * t), 0.5 * t)
        again = ~ok
        step[rows[again]] = shrunk[again]
    return w_new, f_new, g_new, size_new, accepted
