"""The `knn` probe: cosine k-nearest neighbours, k chosen on validation macro-F1."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge, MinLen

from ultrabench_eval.core.device import AUTO, resolve_device
from ultrabench_eval.probes.base import Probe, ProbeResult
from ultrabench_eval.probes.metrics import macro_f1, macro_f1_batched
from ultrabench_eval.probes.options import FORBID_UNKNOWN, DeviceOption, parse_options

DEFAULT_KS = (1, 3, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class KNNOptions:
    """The options of the `knn` probe: the grid of k, and the device."""

    __pydantic_config__ = FORBID_UNKNOWN

    ks: Annotated[tuple[Annotated[int, Ge(1)], ...], MinLen(1)] = DEFAULT_KS
    device: DeviceOption = AUTO


class KNNProbe(Probe):
    """Cosine k-NN on L2-normalised features: each test image takes the majority class of its k
    most similar training images (ties: the class whose members are most similar in total).
    Every k of the grid is scored on validation at once; ties go to the smaller k. The fit is
    deterministic: seeds act only through the few-shot subset."""

    name = "knn"
    uses_seed = False

    def __init__(self, **options: Any) -> None:
        chosen = parse_options(KNNOptions, options)
        self.ks = tuple(sorted(set(chosen.ks)))
        self.device = resolve_device(chosen.device)

    def fit_predict(
        self, train_x, train_y, val_x, val_y, test_x, test_y, *, n_classes: int, seed: int = 0
    ) -> ProbeResult:
        started = time.perf_counter()
        device = self.device
        ks = [k for k in self.ks if k <= len(train_y)] or [len(train_y)]
        train = _unit(train_x, device)
        labels = torch.as_tensor(np.asarray(train_y), dtype=torch.long, device=device)
        val_pred = _vote(train, labels, _unit(val_x, device), ks, n_classes)
        test_pred = _vote(train, labels, _unit(test_x, device), ks, n_classes)
        scores = macro_f1_batched(np.asarray(val_y), val_pred)
        best = int(np.flatnonzero(scores == scores.max())[0])  # ks ascend: the smallest k
        return ProbeResult(
            test_pred=test_pred[best],
            val_pred=val_pred[best],
            test_macro_f1=100.0 * macro_f1(np.asarray(test_y), test_pred[best]),
            val_macro_f1=100.0 * float(scores[best]),
            params={
                "k": ks[best],
                "k_grid": ks,
                "val_macro_f1_per_k": [float(100 * s) for s in scores],
            },
            seconds=time.perf_counter() - started,
        )


def _unit(x: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)
    return torch.nn.functional.normalize(tensor, dim=1)


def _vote(
    train: torch.Tensor,
    labels: torch.Tensor,
    queries: torch.Tensor,
    ks: list[int],
    n_classes: int,
    chunk: int = 4096,
) -> np.ndarray:
    """Predictions [len(ks), N] for every k at once, in chunks of queries."""
    out = []
    for start in range(0, len(queries), chunk):
        sims, idx = (queries[start : start + chunk] @ train.T).topk(max(ks), dim=1)
        onehot = torch.nn.functional.one_hot(labels[idx], n_classes).float()  # [n, kmax, C]
        votes = onehot.cumsum(dim=1)  # votes among the first j neighbours
        weight = (onehot * sims.unsqueeze(2)).cumsum(dim=1)  # similarity mass, for ties
        picks = []
        for k in ks:
            # majority first; among tied classes the larger similarity mass (< 1 per vote)
            score = votes[:, k - 1] + weight[:, k - 1] / (k + 1.0)
            picks.append(score.argmax(dim=1))
        out.append(torch.stack(picks).cpu().numpy())
    return np.concatenate(out, axis=1).astype(np.int64)
