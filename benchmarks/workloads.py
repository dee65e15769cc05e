"""The feature workloads `make perf` times the probes on, each named in the figures it gives.

- `real`: features of a real ultrasound task, `gallbladder-ba` (4,539 infant gallbladder images,
  `benchmarks/data/`), from the `hog` (1,764-d) and `pixels` (1,024-d) adapters: the features a
  user has, ill-conditioned (strongly correlated dimensions, a decaying spectrum). Made at
  benchmark time through the package's own image store and feature cache.
- `butterfly-size`: the size of the largest paper task, Butterfly (28,053 / 6,272 / 6,751
  images, 9 classes), 768-d. Generated with a realistic covariance (see `realistic_features`).
- `gaussian-mixture`: isotropic Gaussian clusters, the earlier workload, kept for comparison;
  it converges in few iterations, so it says little about real features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
REAL_TASK = "gallbladder-ba"
BUTTERFLY_SPLITS = (28_053, 6_272, 6_751)
BUTTERFLY_CLASSES = 9


@dataclass
class Workload:
    """Features and labels of the three splits, and how they were made."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    n_classes: int
    made_by: str

    def describe(self) -> dict:
        return {
            "workload": self.name,
            "made_by": self.made_by,
            "sizes": [len(self.train_y), len(self.val_y), len(self.test_y)],
            "dim": int(self.train_x.shape[1]),
            "classes": self.n_classes,
        }


def realistic_features(
    sizes: tuple[int, ...],
    dim: int,
    n_classes: int,
    *,
    seed: int = 0,
    spectrum_decay: float = 1.6,
    signal_decay: float = 0.25,
    distance: float = 3.0,
) -> list[np.ndarray]:
    """Features with the covariance of a pretrained encoder's: [x, y] per split.

    - Within-class covariance `Q diag(k^-spectrum_decay) Q^T`: a power-law spectrum (encoder
      and hand-made image features decay about as k^-1 to k^-2), turned by a random orthogonal
      Q so every dimension is correlated with the others, scaled per dimension by a log-normal
      factor (raw features are not standardised), plus a shared offset.
    - Class means: along eigen-direction k a class's mean sits a_k standard deviations (of that
      direction) from the centre, a_k ~ N(0, c_k^2) with c_k ~ k^-signal_decay, scaled so that
      the typical Mahalanobis distance between two classes is `distance`. The discriminative
      signal thus reaches far down the spectrum, into directions of tiny variance, as in real
      features: the optimum needs the ill-conditioned directions, and L-BFGS needs about as
      many iterations as on real features (`make perf` records both).
    - Unbalanced classes (counts decay geometrically, the smallest about a tenth of the
      largest), as in Butterfly.
    """
    rng = np.random.default_rng(seed)
    k = np.arange(1, dim + 1, dtype=np.float64)
    sigma = k ** (-spectrum_decay / 2.0)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    per_dim = np.exp(rng.normal(scale=0.5, size=dim))
    offset = rng.normal(size=dim)
    profile = k**-signal_decay
    # E|a_i - a_j|^2 = 2 sum c_k^2 = distance^2
    profile *= distance / np.sqrt(2.0 * np.sum(profile**2))
    means = rng.normal(size=(n_classes, dim)) * profile * sigma
    priors = 0.75 ** np.arange(n_classes)
    priors = priors[rng.permutation(n_classes)] / priors.sum()
    out = []
    for size in sizes:
        y = rng.choice(n_classes, size=size, p=priors)
        latent = means[y] + rng.normal(size=(size, dim)) * sigma
        x = (latent @ rotation.T) * per_dim + offset
        out += [x.astype(np.float32), y.astype(np.int64)]
    return out


def butterfly_size(seed: int = 0) -> Workload:
    """28,053 / 6,272 / 6,751 x 768 features, 9 classes, realistic covariance."""
    parts = realistic_features(BUTTERFLY_SPLITS, 768, BUTTERFLY_CLASSES, seed=seed)
    return Workload(
        "butterfly-size",
        *parts,
        n_classes=BUTTERFLY_CLASSES,
        made_by="benchmarks.workloads.realistic_features (power-law spectrum k^-1.6, class "
        "signal spread down the spectrum, random rotation, log-normal per-dimension scale, "
        f"unbalanced classes), seed {seed}",
    )


def gaussian_mixture(n: int, dim: int, classes: int, seed: int = 0) -> Workload:
    """Isotropic Gaussian clusters with overlap; validation and test a tenth of train each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * (2.5 / np.sqrt(dim))
    parts = []
    for size in (n, n // 10, n // 10):
        y = rng.integers(0, classes, size)
        parts += [(centres[y] + rng.normal(size=(size, dim))).astype(np.float32), y]
    return Workload(
        "gaussian-mixture",
        *parts,
        n_classes=classes,
        made_by=f"benchmarks.workloads.gaussian_mixture (isotropic clusters), seed {seed}",
    )


def real_task(model: str, cache_root: Path, *, workers: int = 0) -> Workload:
    """The features of `model` on the real task, through the package's own store and cache
    (built once under `cache_root`, read from there afterwards)."""
    from ultrabench_eval.data.dataset import open_dataset
    from ultrabench_eval.data.task_card import SPLITS, read_card
    from ultrabench_eval.features.extract import cached_features
    from ultrabench_eval.features.stores import open_task_stores, store_resize
    from ultrabench_eval.models.factory import make_adapter, pooling_of

    card = read_card(DATA / f"{REAL_TASK}.yaml")
    dataset = open_dataset(card, DATA)
    adapter = make_adapter(model).load(None).to("cpu")
    size, interpolation = store_resize(adapter, None)
    stores = open_task_stores(
        dataset, size, interpolation, cache_root, workers=workers, progress=False
    )
    pooling = pooling_of(adapter, None)
    parts = []
    for split in SPLITS:
        found = cached_features(adapter, card.name, split, stores[split], cache_root)
        parts += [found.features[pooling], dataset.splits[split].labels.astype(np.int64)]
    return Workload(
        f"real:{REAL_TASK}:{model}",
        *parts,
        n_classes=card.num_classes,
        made_by=f"`{model}` adapter on benchmarks/data/{REAL_TASK} ({size} px store, "
        f"{pooling} pooling)",
    )
