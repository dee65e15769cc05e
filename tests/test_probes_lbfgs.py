"""The batched L-BFGS: each problem reaches its own minimum, converged problems cost nothing."""

from __future__ import annotations

import torch

from ultrabench_eval.probes.lbfgs import minimize_batched


def quadratics(g: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """G convex quadratics 0.5 w'A w - b'w with different conditioning: (A [G, n, n], b [G, n])."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(g, n, n, generator=gen, dtype=torch.float64))
    spread = torch.logspace(0, 3, g, dtype=torch.float64)  # condition numbers 1 .. 1000
    eig = 1.0 + (spread.view(-1, 1) - 1.0) * torch.rand(g, n, generator=gen, dtype=torch.float64)
    a = q @ torch.diag_embed(eig) @ q.transpose(1, 2)
    b = torch.randn(g, n, generator=gen, dtype=torch.float64)
    return a, b


class CountingQuadratic:
    """objective(w, rows) for the quadratics, recording which rows each call evaluates."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        self.a, self.b = a, b
        self.calls: list[list[int]] = []

    def __call__(self, w: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(rows.tolist())
        aw = torch.bmm(self.a[rows], w.unsqueeze(2)).squeeze(2)
        f = 0.5 * (w * aw).sum(1) - (self.b[rows] * w).sum(1)
        return f, aw - self.b[rows]


def test_every_problem_reaches_its_own_minimum():
    a, b = quadratics(6, 12)
    objective = CountingQuadratic(a, b)
    found = minimize_batched(
        objective, torch.zeros(6, 12, dtype=torch.float64), tol=1e-10, max_iter=500
    )
    exact = torch.linalg.solve(a, b.unsqueeze(2)).squeeze(2)
    assert bool(found.converged.all())
    assert torch.allclose(found.w, exact, atol=1e-8, rtol=0)
    assert found.g.abs().amax() <= 1e-10
    # better-conditioned problems need fewer steps
    assert found.iterations[0] < found.iterations[-1]


def test_converged_problems_are_not_evaluated_again():
    a, b = quadratics(6, 12)
    objective = CountingQuadratic(a, b)
    found = minimize_batched(
        objective, torch.zeros(6, 12, dtype=torch.float64), tol=1e-10, max_iter=500
    )
    evaluations = torch.zeros(6, dtype=torch.long)
    for rows in objective.calls:
        evaluations[rows] += 1
    # the first problem (condition number 1) stops early and is left alone afterwards
    assert evaluations[0] < evaluations[-1]
    assert int(evaluations[0]) <= int(found.iterations[0]) * 2 + 1


def test_a_problem_solves_the_same_alone_and_in_a_batch():
    a, b = quadratics(5, 10, seed=3)
    together = minimize_batched(
        CountingQuadratic(a, b), torch.zeros(5, 10, dtype=torch.float64), tol=1e-9, max_iter=500
    )
    alone = minimize_batched(
        CountingQuadratic(a[2:3], b[2:3]),
        torch.zeros(1, 10, dtype=torch.float64),
        tol=1e-9,
        max_iter=500,
    )
    assert int(alone.iterations[0]) == int(together.iterations[2])
    assert torch.allclose(alone.w[0], together.w[2], atol=1e-12, rtol=0)


def test_a_problem_already_at_its_minimum_takes_no_step():
    a, b = quadratics(3, 8, seed=1)
    start = torch.zeros(3, 8, dtype=torch.float64)
    start[1] = torch.linalg.solve(a[1], b[1])
    found = minimize_batched(CountingQuadratic(a, b), start, tol=1e-8, max_iter=200)
    assert int(found.iterations[1]) == 0
    assert torch.equal(found.w[1], start[1])
    assert bool(found.converged.all())


def test_an_objective_can_give_the_size_the_stopping_test_reads():
    """A change of variables w = 2 u: the solver steps in u, but stops on the gradient in w
    (half the gradient in u), so the same tol means the same accuracy in w."""
    a, b = quadratics(3, 8)
    plain = CountingQuadratic(a, b)

    def scaled(u: torch.Tensor, rows: torch.Tensor):
        f, g_w = plain(2.0 * u, rows)
        return f, 2.0 * g_w, g_w.abs().amax(dim=1)

    found = minimize_batched(scaled, torch.zeros(3, 8, dtype=torch.float64), tol=1e-9, max_iter=500)
    assert bool(found.converged.all())
    _, g_w = plain(2.0 * found.w, torch.arange(3))
    assert torch.equal(found.size, g_w.abs().amax(dim=1))
    assert float(found.size.max()) <= 1e-9
    exact = torch.linalg.solve(a, b.unsqueeze(2)).squeeze(2)
    assert torch.allclose(2.0 * found.w, exact, atol=1e-7, rtol=0)
