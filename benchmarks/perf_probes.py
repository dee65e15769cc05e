"""`make perf`, the probe half: how fast the probes that make the numbers run.

- `linear`: the full C sweep (13 values) x 5 seeds, each seed a stratified half of 20,000 x 768
  features with 9 classes, fitted by the batched torch L-BFGS (all 65 problems at once) and by
  the scikit-learn backend (one `LogisticRegression` per problem), same tolerance, same
  selection; the scores must agree.
- `us-jepa-2026`: 5 seeds x 5 label fractions trained as one batched model, against the same
  25 problems trained one at a time.

Writes `results/perf/probes-<device>.json`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from benchmarks.perf import machine, write_figures
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.probes import LinearProbe, USJepa2026Probe
from ultrabench_eval.probes.fewshot import DEFAULT_FRACTIONS, Budget

SEEDS = 5


def mixture(n: int, dim: int, classes: int, seed: int = 0) -> list[np.ndarray]:
    """Gaussian clusters with overlap (a probe cannot score 100): train, val and test sets."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * (2.5 / np.sqrt(dim))
    out = []
    for size in (n, n // 10, n // 10):
        y = rng.integers(0, classes, size)
        out += [(centres[y] + rng.normal(size=(size, dim))).astype(np.float32), y]
    return out


def linear_sweep(device: torch.device, n: int, dim: int, classes: int) -> dict[str, Any]:
    train_x, train_y, val_x, val_y, test_x, test_y = mixture(n, dim, classes)
    subsets = [Budget(fraction=0.5).indices(train_y, seed, classes) for seed in range(SEEDS)]
    timings, scores = {}, {}
    for backend in ("torch", "sklearn"):
        probe = LinearProbe(backend=backend, device=str(device) if backend == "torch" else None)
        started = time.perf_counter()
        results = probe.fit_predict_subsets(
            train_x,
            train_y,
            subsets,
            val_x,
            val_y,
            test_x,
            test_y,
            n_classes=classes,
            seeds=list(range(SEEDS)),
        )
        timings[backend] = time.perf_counter() - started
        scores[backend] = [(r.params["C"], r.test_macro_f1) for r in results]
    same_c = all(a[0] == b[0] for a, b in zip(scores["torch"], scores["sklearn"], strict=True))
    gap = max(abs(a[1] - b[1]) for a, b in zip(scores["torch"], scores["sklearn"], strict=True))
    return {
        "features": [n, dim],
        "classes": classes,
        "problems": SEEDS * len(LinearProbe().Cs),
        "torch_seconds": round(timings["torch"], 3),
        "sklearn_seconds": round(timings["sklearn"], 3),
        "speedup_vs_sklearn": round(timings["sklearn"] / timings["torch"], 2),
        "same_C_every_seed": same_c,
        "max_test_macro_f1_difference": round(gap, 4),
        "test_macro_f1_torch": [round(s, 3) for _, s in scores["torch"]],
    }


def preset_batched(device: torch.device, n: int, dim: int, classes: int) -> dict[str, Any]:
    train_x, train_y, val_x, val_y, test_x, test_y = mixture(n, dim, classes, seed=1)
    problems = [
        (Budget(fraction=f).indices(train_y, seed, classes), seed)
        for f in DEFAULT_FRACTIONS
        for seed in range(SEEDS)
    ]
    probe = USJepa2026Probe(device=str(device))
    started = time.perf_counter()
    together = probe.fit_predict_subsets(
        train_x,
        train_y,
        [p[0] for p in problems],
        val_x,
        val_y,
        test_x,
        test_y,
        n_classes=classes,
        seeds=[p[1] for p in problems],
    )
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    alone = [
        probe.fit_predict(
            train_x[idx], train_y[idx], val_x, val_y, test_x, test_y, n_classes=classes, seed=seed
        )
        for idx, seed in problems
    ]
    loop_s = time.perf_counter() - started
    gap = max(abs(a.test_macro_f1 - b.test_macro_f1) for a, b in zip(together, alone, strict=True))
    return {
        "features": [n, dim],
        "classes": classes,
        "problems": len(problems),
        "batched_seconds": round(batched_s, 3),
        "one_at_a_time_seconds": round(loop_s, 3),
        "speedup_vs_one_at_a_time": round(loop_s / batched_s, 2),
        "max_test_macro_f1_difference": round(gap, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_probes", description=__doc__)
    parser.add_argument("--out", default="results/perf")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--preset-samples", type=int, default=2_000)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    figures = {
        **machine(device),
        "linear": linear_sweep(device, args.samples, args.dim, args.classes),
        "us_jepa_2026": preset_batched(device, args.preset_samples, args.dim, args.classes),
    }
    write_figures(figures, args.out, "probes", device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
