"""Probes: classifiers trained on frozen features. Importing this module registers them.

| name | what |
|---|---|
| `us-jepa-2026` | the published protocol: a linear layer, AdamW, early stopping (batched seeds) |
| `linear` (also `lbfgs`) | L2 logistic regression, the C grid fitted at once by batched L-BFGS |
| `knn` | cosine k-nearest neighbours, k chosen on validation |
| `mlp` | one hidden layer, AdamW, early stopping (batched seeds) |
| `dense` | segmentation: a linear 1x1 head on patch tokens, upsampled, scan-masked CE |
| `attentive` | V-JEPA's attentive probe on patch tokens (batched seeds and learning rates) |
"""

from typing import Any

from ultrabench_eval.core.device import AUTO
from ultrabench_eval.core.registry import PROBES
from ultrabench_eval.probes.attentive import AttentiveProbe
from ultrabench_eval.probes.base import Probe, ProbeResult
from ultrabench_eval.probes.dense import DenseProbe
from ultrabench_eval.probes.knn import KNNProbe
from ultrabench_eval.probes.linear import LinearProbe
from ultrabench_eval.probes.sgd import MLP, US_JEPA_2026, SGDProbe


class USJepa2026Probe(SGDProbe):
    """The US-JEPA (2026) protocol: a linear layer on frozen features, AdamW lr 1e-3, weight
    decay 1e-4, batch 32, cross-entropy, cosine annealing, at most 150 epochs, early stopping on
    validation loss (patience 15); a seed sets the initialisation and the batch order."""

    name = "us-jepa-2026"

    def __init__(self, device: str | None = AUTO, **options: Any) -> None:
        super().__init__(US_JEPA_2026, device, **options)


class MLPProbe(SGDProbe):
    """One hidden layer of 512 ReLU units on standardised features, AdamW lr 1e-3, batch 64,
    cosine annealing, at most 100 epochs, early stopping on validation loss (patience 10)."""

    name = "mlp"

    def __init__(self, device: str | None = AUTO, **options: Any) -> None:
        super().__init__(MLP, device, **options)


PROBES.register("us-jepa-2026", USJepa2026Probe)
PROBES.register("linear", LinearProbe)
PROBES.register("lbfgs", LinearProbe)
PROBES.register("knn", KNNProbe)
PROBES.register("mlp", MLPProbe)
PROBES.register("dense", DenseProbe)
PROBES.register("attentive", AttentiveProbe)

__all__ = [
    "AttentiveProbe",
    "DenseProbe",
    "KNNProbe",
    "LinearProbe",
    "MLPProbe",
    "Probe",
    "ProbeResult",
    "USJepa2026Probe",
]
