"""`make perf`, the dense half: the `dense` segmentation probe's throughput on generated patch
tokens, 5 seeds x 5 label fractions (25 problems) trained as one batched model.

Workloads (`--workloads`):

- `realistic`: the size of a real segmentation task: 1,000 / 200 / 200 images of 14 x 14
  tokens x 768 dims (a ViT-B/16 at 224 px) in float16, masks at 224 x 224, 3 classes;
- `small`: 60 / 12 / 12 images of 8 x 8 tokens x 32 dims, masks at 32 x 32; small enough to
  also train the 25 problems one at a time, which shows what batching buys and that it changes
  no number.

On a GPU both run by default; on the CPU only `small` (the realistic one takes about an hour and
a half on two cores): name it in `--workloads` to run it there.

The tokens are generated (`planted_segmentation`): two elliptic organs inside an ultrasound fan,
each patch's token its classes' pixel shares times a per-class direction, plus correlated noise,
so the probe has something to find and the scores say it found it.

Figures per workload: seconds for the batched run, seconds per problem, image-epochs per second
(the training images of every problem times the epochs, over the seconds; the per-epoch
validation included), and the test Dice per fraction. Writes `results/perf/dense-<device>.json`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.perf import machine, write_figures
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.probes.dense import DenseOptions, DenseProbe
from ultrabench_eval.probes.fewshot import DEFAULT_FRACTIONS

SEEDS = 5


@dataclass(frozen=True)
class DenseWorkload:
    """Sizes of a generated segmentation workload."""

    name: str
    splits: tuple[int, int, int]  # train, validation, test images
    grid: tuple[int, int]
    dim: int
    size: int  # masks are size x size
    n_classes: int = 3


WORKLOADS = {
    "realistic": DenseWorkload("realistic", (1_000, 200, 200), (14, 14), 768, 224),
    "small": DenseWorkload("small", (60, 12, 12), (8, 8), 32, 32),
}


def planted_segmentation(work: DenseWorkload, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Tokens float16 [n, T, D], masks uint8 [n, E, E], scan masks uint8 [n, E, E].

    Each image: a fan (the scan), and inside it an ellipse of class 1 and one of class 2 (the
    later drawn on top) at random places and sizes. A patch's token is the sum over classes of
    the class's share of the patch's pixels times the class's direction (a fixed random unit
    vector scaled by 3), plus noise with a decaying spectrum, as an encoder's tokens have.
    """
    rng = np.random.default_rng([seed, n])
    size, (h, w), dim = work.size, work.grid, work.dim
    yy, xx = np.mgrid[0:size, 0:size] / size
    scan = (np.abs(xx - 0.5) < (yy + 0.1) * 0.55) & (np.hypot(yy + 0.1, xx - 0.5) < 1.05)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        for c in range(1, work.n_classes):
            cy, cx = rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.75)
            ry, rx = rng.uniform(0.08, 0.2, size=2)
            masks[i][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = c
    masks[:, ~scan] = 0
    valid = np.repeat(scan[None].astype(np.uint8), n, axis=0)
    # the share of each class in each patch [n, T, K]
    one_hot = np.eye(work.n_classes, dtype=np.float32)[masks]
    shares = one_hot.reshape(n, h, size // h, w, size // w, -1).mean(axis=(2, 4))
    directions = np.random.default_rng(7).normal(size=(work.n_classes, dim))
    directions *= 3.0 / np.linalg.norm(directions, axis=1, keepdims=True)
    spectrum = np.arange(1, dim + 1) ** -0.5
    tokens = np.empty((n, h * w, dim), dtype=np.float16)
    for start in range(0, n, 100):  # float32 intermediates a hundred images at a time
        part = shares[start : start + 100].reshape(-1, h * w, work.n_classes) @ directions
        noise = rng.normal(size=(*part.shape[:2], dim)) * spectrum
        tokens[start : start + 100] = (part + noise + 1.0).astype(np.float16)
    return tokens, masks, valid


def subsets_of(n_train: int) -> list[tuple[np.ndarray, int, float]]:
    """(training images, seed, fraction) of the 25 problems: per seed a random order of the
    images, a fraction taking its first max(1, round(fraction * n)) (nested, as few-shot
    subsets are)."""
    out = []
    for fraction in DEFAULT_FRACTIONS:
        for seed in range(SEEDS):
            order = np.random.default_rng([seed, 0xDE45E]).permutation(n_train)
            out.append((np.sort(order[: max(1, round(fraction * n_train))]), seed, fraction))
    return out


def measure(
    work: DenseWorkload, device: torch.device, epochs: int, one_at_a_time: bool
) -> dict[str, Any]:
    train, val, test = (planted_segmentation(work, n, seed) for seed, n in enumerate(work.splits))
    problems = subsets_of(work.splits[0])
    probe = DenseProbe(device=str(device), epochs=epochs)

    def fit(chosen):
        _sync(device)
        started = time.perf_counter()
        results = probe.fit_predict_subsets(
            *train,
            [subset for subset, _, _ in chosen],
            *val,
            *test,
            grid=work.grid,
            n_classes=work.n_classes,
            seeds=[seed for _, seed, _ in chosen],
        )
        _sync(device)
        return results, time.perf_counter() - started

    fit(problems[:1])  # warm-up: kernels, allocator
    together, seconds = fit(problems)
    image_epochs = sum(len(subset) for subset, _, _ in problems) * epochs
    out: dict[str, Any] = {
        "workload": work.name,
        "sizes": list(work.splits),
        "grid": list(work.grid),
        "dim": work.dim,
        "eval_size": work.size,
        "classes": work.n_classes,
        "tokens_dtype": "float16",
        "train_tokens_mib": round(work.splits[0] * work.grid[0] * work.grid[1] * work.dim / 2**19),
        "epochs": epochs,
        "batch_size": probe.options.batch_size,
        "problems": len(problems),
        "fractions": list(DEFAULT_FRACTIONS),
        "seeds": SEEDS,
        "batched_seconds": round(seconds, 3),
        "seconds_per_problem": round(seconds / len(problems), 4),
        "image_epochs_per_second": round(image_epochs / seconds, 1),
        "test_dice_mean_per_fraction": [
            round(float(np.mean([r.test_dice for r in together[i : i + SEEDS]])), 3)
            for i in range(0, len(together), SEEDS)
        ],
        "best_epochs": [int(r.params["best_epoch"]) for r in together],
    }
    if one_at_a_time:
        alone, loop_s = [], 0.0
        for problem in problems:
            (result,), took = fit([problem])
            alone.append(result)
            loop_s += took
        out["one_at_a_time_seconds"] = round(loop_s, 3)
        out["speedup_vs_one_at_a_time"] = round(loop_s / seconds, 2)
        out["max_test_dice_difference"] = max(
            abs(a.test_dice - b.test_dice) for a, b in zip(together, alone, strict=True)
        )
        out["max_head_difference"] = float(
            max(
                np.abs(a.head.weight - b.head.weight).max()
                for a, b in zip(together, alone, strict=True)
            )
        )
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf_dense", description=__doc__)
    parser.add_argument("--out", default="results/perf")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--workloads",
        help=f"comma-separated: {', '.join(WORKLOADS)} (default: both on a GPU, small on the CPU)",
    )
    parser.add_argument(
        "--epochs", type=int, default=DenseOptions.epochs, help="default: the probe's"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    chosen = args.workloads or ("realistic,small" if device.type == "cuda" else "small")
    names = [n.strip() for n in chosen.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown} (known: {', '.join(WORKLOADS)})")
    results = []
    for name in names:
        work = WORKLOADS[name]
        results.append(measure(work, device, args.epochs, one_at_a_time=name == "small"))
        print(f"{name}: done", flush=True)
    figures = {**machine(device), "workloads": results}
    write_figures(figures, args.out, "dense", device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
