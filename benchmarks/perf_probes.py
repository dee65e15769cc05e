"""`make perf`, the probe half: the probes that make the numbers, timed on the workloads users
have (`benchmarks.workloads`: a real task's features, a Butterfly-size workload with a
realistic covariance, and Gaussian mixtures for comparison).

Per workload:

- `linear`: the C sweep (13 values) on the whole training set, a deterministic problem fitted
  once; the batched, preconditioned torch L-BFGS against scikit-learn's `LogisticRegression`
  (one fit per C) at the same tolerance: seconds, the C each selects, the scores, and the
  iterations per C (scikit-learn's are plain L-BFGS's: they show how ill-conditioned the
  workload is).
- `us-jepa-2026`: the published protocol, 5 seeds x 5 label fractions (25 problems) trained
  as one batched model; on workloads small enough, also the same 25 problems one at a time.

Writes `results/perf/probes-<device>.json`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.perf import machine, write_figures
from benchmarks.workloads import Workload, butterfly_size, gaussian_mixture, real_task
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.probes import LinearProbe, USJepa2026Probe
from ultrabench_eval.probes.fewshot import DEFAULT_FRACTIONS, Budget
from ultrabench_eval.probes.linear import LinearOptions

SEEDS = 5
REAL_MODELS = ("hog", "pixels")
# Above this many training samples the one-at-a-time loop of the 25 problems is not timed.
PLAIN_LOOP_MAX_TRAIN = 5_000


def linear_sweep(work: Workload, device: torch.device, tol: float) -> dict[str, Any]:
    """The `linear` C sweep on the whole training set, torch against scikit-learn, both at
    the same tolerance."""
    everything = [np.arange(len(work.train_y))]
    out: dict[str, Any] = {}
    fits = {}
    for backend in ("torch", "sklearn"):
        probe = LinearProbe(
            backend=backend, tol=tol, device=str(device) if backend == "torch" else "cpu"
        )
        started = time.perf_counter()
        (result,) = probe.fit_predict_subsets(
            work.train_x,
            work.train_y,
            everything,
            work.val_x,
            work.val_y,
            work.test_x,
            work.test_y,
            n_classes=work.n_classes,
            seeds=[0],
        )
        seconds = time.perf_counter() - started
        fits[backend] = result
        out[backend] = {
            "seconds": round(seconds, 3),
            "C": result.params["C"],
            "test_macro_f1": round(result.test_macro_f1, 4),
            "val_macro_f1": round(result.val_macro_f1, 4),
            "iterations_per_C": result.params["iterations"],
            "converged_per_C": result.params["converged"],
            "val_macro_f1_per_C": [round(v, 3) for v in result.params["val_macro_f1_per_C"]],
        }
    torch_fit, reference = fits["torch"], fits["sklearn"]
    out.update(
        {
            "tol": torch_fit.params["tol"],
            "Cs": len(torch_fit.params["C_grid"]),
            "speedup_vs_sklearn": round(out["sklearn"]["seconds"] / out["torch"]["seconds"], 2),
            "same_C": torch_fit.params["C"] == reference.params["C"],
            "test_macro_f1_difference": round(
                abs(torch_fit.test_macro_f1 - reference.test_macro_f1), 4
            ),
            "test_predictions_equal": float(np.mean(torch_fit.test_pred == reference.test_pred)),
        }
    )
    return out


def preset_protocol(work: Workload, device: torch.device, plain_loop: bool) -> dict[str, Any]:
    """`us-jepa-2026` over 5 seeds x 5 fractions, batched (and one at a time when asked)."""
    problems = [
        (Budget(fraction=f).indices(work.train_y, seed, work.n_classes), seed)
        for f in DEFAULT_FRACTIONS
        for seed in range(SEEDS)
    ]
    probe = USJepa2026Probe(device=str(device))
    data = (work.val_x, work.val_y, work.test_x, work.test_y)
    started = time.perf_counter()
    together = probe.fit_predict_subsets(
        work.train_x,
        work.train_y,
        [idx for idx, _ in problems],
        *data,
        n_classes=work.n_classes,
        seeds=[seed for _, seed in problems],
    )
    out: dict[str, Any] = {
        "problems": len(problems),
        "fractions": list(DEFAULT_FRACTIONS),
        "seeds": SEEDS,
        "batched_seconds": round(time.perf_counter() - started, 3),
        "epochs_run": [int(r.params["epochs_run"]) for r in together],
        "test_macro_f1_mean_per_fraction": [
            round(float(np.mean([r.test_macro_f1 for r in together[i : i + SEEDS]])), 3)
            for i in range(0, len(together), SEEDS)
        ],
    }
    if plain_loop:
        started = time.perf_counter()
        alone = [
            probe.fit_predict(
                work.train_x[idx],
                work.train_y[idx],
                *data,
                n_classes=work.n_classes,
                seed=seed,
            )
            for idx, seed in problems
        ]
        loop_s = time.perf_counter() - started
        out["one_at_a_time_seconds"] = round(loop_s, 3)
        out["speedup_vs_one_at_a_time"] = round(loop_s / out["batched_seconds"], 2)
        out["max_test_macro_f1_difference"] = round(
            max(
                abs(a.test_macro_f1 - b.test_macro_f1) for a, b in zip(together, alone, strict=True)
            ),
            6,
        )
    return out


def measure(work: Workload, device: torch.device, probes: list[str], tol: float) -> dict[str, Any]:
    figures: dict[str, Any] = work.describe()
    if "linear" in probes:
        figures["linear"] = linear_sweep(work, device, tol)
    if "us-jepa-2026" in probes:
        plain = len(work.train_y) <= PLAIN_LOOP_MAX_TRAIN
        figures["us_jepa_2026"] = preset_protocol(work, device, plain)
    return figures


def workloads(names: list[str], cache: Path) -> list[Workload]:
    out = []
    for name in names:
        if name == "real":
            out += [real_task(model, cache) for model in REAL_MODELS]
        elif name == "butterfly-size":
            out.append(butterfly_size())
        elif name == "gaussian-mixture":
            out.append(gaussian_mixture(20_000, 768, 9))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_probes", description=__doc__)
    parser.add_argument("--out", default="results/perf")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--workloads",
        default="real,butterfly-size,gaussian-mixture",
        help="comma-separated: real, butterfly-size, gaussian-mixture",
    )
    parser.add_argument("--probes", default="linear,us-jepa-2026")
    parser.add_argument(
        "--tol",
        type=float,
        default=LinearOptions.tol,
        help="the `linear` sweep's tolerance, for both backends (default: the probe's)",
    )
    parser.add_argument(
        "--cache", help="feature cache of the real task (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    probes = [p.strip() for p in args.probes.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="ubench-perf-probes-") as scratch:
        cache = Path(args.cache) if args.cache else Path(scratch)
        results = []
        for work in workloads(names, cache):
            results.append(measure(work, device, probes, args.tol))
            print(f"{work.name}: done", flush=True)
    figures = {**machine(device), "workloads": results}
    write_figures(figures, args.out, "probes", device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
