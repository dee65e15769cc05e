"""Probes trained by mini-batch AdamW with early stopping: the `us-jepa-2026` linear preset and the
one-hidden-layer `mlp`.

Every (training subset, seed) pair is one problem, and all problems train together as one
batched model: weights stacked along a leading problem axis, one batched matmul per layer and
step, AdamW applied per problem with its own step count. A problem whose subset has fewer
batches per epoch sits out the remaining steps of the epoch; one that has stopped early sits out
the rest. Each problem reproduces the plain loop a user writes for one seed:

    g = torch.Generator().manual_seed(seed)
    layer weights: kaiming-uniform (a = sqrt 5) then bias uniform(+-1/sqrt(fan_in)), from g,
        layer by layer (nn.Linear's initialisation, drawn from g);
    each epoch: order = torch.randperm(n, generator=g), batches of `batch_size` in that order
        (the last one smaller), cross-entropy (mean over the batch), AdamW step;
    cosine annealing of the learning rate per epoch over `max_epochs`;
    after each epoch the validation loss; stop after `patience` epochs without improvement and
    keep the weights of the best epoch.

So a seed changes the initialisation and the batch order (and, upstream, the few-shot subset).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge, Lt

from ultrabench_eval.core.device import AUTO, resolve_device
from ultrabench_eval.probes.base import BatchedProbe, ProbeResult
from ultrabench_eval.probes.metrics import macro_f1
from ultrabench_eval.probes.options import (
    FORBID_UNKNOWN,
    Positive,
    check_device_option,
    parse_options,
)
from ultrabench_eval.probes.standardise import train_statistics

Count = Annotated[int, Ge(1)]
Beta = Annotated[float, Ge(0), Lt(1)]


@dataclass(frozen=True)
class SGDConfig:
    """A training recipe; its fields, but for the device, are the options of a preset probe."""

    __pydantic_config__ = FORBID_UNKNOWN

    hidden: Count | None = None  # width of the hidden layer; None: a linear layer
    lr: Positive = 1e-3
    weight_decay: Annotated[float, Ge(0)] = 1e-4
    batch_size: Count = 32
    max_epochs: Count = 150
    patience: Count = 15  # epochs without a better validation loss before stopping
    cosine: bool = True
    standardize: bool = False  # z-score with the training subset's statistics
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: Positive = 1e-8


US_JEPA_2026 = SGDConfig()  # App. D.2 of arXiv 2602.19322: linear layer on frozen features
MLP = SGDConfig(hidden=512, max_epochs=100, patience=10, batch_size=64, standardize=True)


class SGDProbe(BatchedProbe):
    """A linear layer (or an MLP) trained with AdamW, cosine annealing and early stopping on
    validation loss; all seeds and subsets at once."""

    name = "sgd"
    uses_seed = True

    def __init__(
        self, config: SGDConfig = US_JEPA_2026, device: str | None = AUTO, **options: Any
    ) -> None:
        """`options` replace fields of the recipe `config`."""
        check_device_option(device)
        if options:
            config = parse_options(SGDConfig, {**asdict(config), **options}, ("device",))
        self.config = config
        self.device = resolve_device(device)

    def fit_predict_subsets(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        subsets: Sequence[np.ndarray],
        val_x: np.ndarray,
        val_y: np.ndarray,
        test_x: np.ndarray,
        test_y: np.ndarray,
        *,
        n_classes: int,
        seeds: Sequence[int],
    ) -> list[ProbeResult]:
        started = time.perf_counter()
        device = self.device
        data = _Data(train_x, train_y, val_x, val_y, test_x, device)
        run = _BatchedRun(
            self.config, data, [np.asarray(s) for s in subsets], list(seeds), n_classes
        )
        run.train()
        val_pred, test_pred = run.predict()
        seconds = (time.perf_counter() - started) / len(subsets)
        val_y, test_y = np.asarray(val_y), np.asarray(test_y)
        results = []
        for p in range(len(subsets)):
            results.append(
                ProbeResult(
                    test_pred=test_pred[p],
                    val_pred=val_pred[p],
                    test_macro_f1=100.0 * macro_f1(test_y, test_pred[p]),
                    val_macro_f1=100.0 * macro_f1(val_y, val_pred[p]),
                    params={
                        **{k: v for k, v in asdict(self.config).items()},
                        "best_epoch": int(run.best_epoch[p]),
                        "epochs_run": int(run.epochs_run[p]),
                        "best_val_loss": float(run.best_loss[p]),
                        "train_size": len(subsets[p]),
                        "device": str(device),
                    },
                    seconds=seconds,
                )
            )
        return results


class _Data:
    """Features on the device (float32), shared by every problem."""

    def __init__(self, train_x, train_y, val_x, val_y, test_x, device: torch.device) -> None:
        def put(a, dtype=torch.float32):
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)

        self.train_x, self.val_x, self.test_x = put(train_x), put(val_x), put(test_x)
        self.train_y = put(train_y, torch.long)
        self.val_y = put(val_y, torch.long)
        self.device = device


class _BatchedRun:
    def __init__(self, config: SGDConfig, data: _Data, subsets, seeds, n_classes: int) -> None:
        self.config, self.data, self.n_classes = config, data, n_classes
        self.subsets = [torch.as_tensor(s, dtype=torch.long, device=data.device) for s in subsets]
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        n_problems = len(subsets)
        dim = data.train_x.shape[1]
        self.shift, self.scale = self._standardisation(dim)
        widths = [dim, config.hidden, n_classes] if config.hidden else [dim, n_classes]
        self.params = self._initialise(widths)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(n_problems, device=data.device)
        self.best = [p.detach().clone() for p in self.params]
        self.best_loss = np.full(n_problems, np.inf)
        self.best_epoch = np.zeros(n_problems, dtype=np.int64)
        self.epochs_run = np.zeros(n_problems, dtype=np.int64)
        self.waiting = np.zeros(n_problems, dtype=np.int64)
        self.running = np.ones(n_problems, dtype=bool)

    # --- set-up -----------------------------------------------------------------------------
    def _standardisation(self, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per problem, the training subset's mean and std (or 0 and 1): [P, D] each."""
        n = len(self.subsets)
        device = self.data.device
        if not self.config.standardize:
            return torch.zeros(n, dim, device=device), torch.ones(n, dim, device=device)
        shifts, scales = [], []
        for subset in self.subsets:
            mean, std = train_statistics(self.data.train_x[subset].double())
            shifts.append(mean.float())
            scales.append(std.float())
        return torch.stack(shifts), torch.stack(scales)

    def _initialise(self, widths: list[int]) -> list[torch.Tensor]:
        """Weights [P, in, out] and biases [P, out] per layer, drawn as nn.Linear draws them,
        from each problem's own generator."""
        params: list[list[torch.Tensor]] = [[] for _ in range(2 * (len(widths) - 1))]
        for generator in self.generators:
            for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
                weight = torch.empty(fan_out, fan_in)
                torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(fan_in)
                bias = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
                params[2 * layer].append(weight.T.contiguous())
                params[2 * layer + 1].append(bias)
        device = self.data.device
        return [torch.stack(p).to(device).requires_grad_(True) for p in params]

    # --- the model --------------------------------------------------------------------------
    def _logits(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """x [P, B, D] (or [B, D] shared by every problem) -> logits [P, B, K].

        The standardisation is folded into the first layer, ((x - m) / s) W + b =
        x (W / s) + (b - (m / s) W), so shared inputs are never copied per problem.
        """
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(len(self.subsets), -1, -1)
        weight, bias = params[0], params[1]
        if self.config.standardize:
            bias = bias - torch.bmm((self.shift / self.scale)[:, None, :], weight).squeeze(1)
            weight = weight / self.scale[:, :, None]
        h = torch.baddbmm(bias[:, None, :], x, weight)
        for layer in range(2, len(params), 2):
            h = torch.baddbmm(params[layer + 1][:, None, :], torch.relu(h), params[layer])
        return h

    # --- training ---------------------------------------------------------------------------
    def train(self) -> None:
        config = self.config
        batch = config.batch_size
        for epoch in range(config.max_epochs):
            if not self.running.any():
                break
            lr = self._lr(epoch)
            orders = [
                torch.randperm(len(s), generator=g).to(self.data.device)
                if self.running[p]
                else None
                for p, (s, g) in enumerate(zip(self.subsets, self.generators, strict=True))
            ]
            steps = max(math.ceil(len(s) / batch) for s in self.subsets)
            for step in range(steps):
                self._step(orders, step, lr)
            self._end_of_epoch(epoch)

    def _lr(self, epoch: int) -> float:
        config = self.config
        if not config.cosine:
            return config.lr
        return config.lr * (1.0 + math.cos(math.pi * epoch / config.max_epochs)) / 2.0

    def _step(self, orders: list[torch.Tensor | None], step: int, lr: float) -> None:
        batch = self.config.batch_size
        n_problems = len(self.subsets)
        device = self.data.device
        index = torch.zeros(n_problems, batch, dtype=torch.long, device=device)
        valid = torch.zeros(n_problems, batch, dtype=torch.bool, device=device)
        for p, order in enumerate(orders):
            if order is None:
                continue
            chosen = self.subsets[p][order[step * batch : (step + 1) * batch]]
            index[p, : len(chosen)] = chosen
            valid[p, : len(chosen)] = True
        active = valid.any(dim=1)
        if not active.any():
            return
        x = self.data.train_x[index]  # [P, B, D]
        y = self.data.train_y[index]
        logits = self._logits(self.params, x)
        losses = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.n_classes), y.reshape(-1), reduction="none"
        ).view(n_problems, batch)
        counts = valid.sum(dim=1).clamp_min(1)
        # the sum of the per-problem mean losses: each problem's gradient is its own
        total = ((losses * valid).sum(dim=1) / counts).sum()
        grads = torch.autograd.grad(total, self.params)
        with torch.no_grad():
            self._adamw(grads, active, lr)

    def _adamw(self, grads, active: torch.Tensor, lr: float) -> None:
        """torch.optim.AdamW's update, per problem, for the active problems only."""
        beta1, beta2 = self.config.betas
        self.steps += active.float()
        bias1 = 1.0 - beta1 ** self.steps.clamp_min(1)
        bias2 = 1.0 - beta2 ** self.steps.clamp_min(1)
        for param, grad, m, v in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, strict=True
        ):
            shape = (-1,) + (1,) * (param.ndim - 1)
            on = active.view(shape)
            new_m = torch.lerp(m, grad, 1.0 - beta1)
            new_v = v * beta2 + (1.0 - beta2) * grad * grad
            decayed = param * (1.0 - lr * self.config.weight_decay)
            denom = new_v.sqrt() / bias2.sqrt().view(shape) + self.config.eps
            updated = decayed - (lr / bias1).view(shape) * new_m / denom
            m.copy_(torch.where(on, new_m, m))
            v.copy_(torch.where(on, new_v, v))
            param.copy_(torch.where(on, updated, param))

    @torch.no_grad()
    def _end_of_epoch(self, epoch: int) -> None:
        logits = self._logits(self.params, self.data.val_x)
        loss = (
            torch.nn.functional.cross_entropy(
                logits.permute(0, 2, 1),
                self.data.val_y.expand(len(self.subsets), -1),
                reduction="none",
            )
            .mean(dim=1)
            .cpu()
            .numpy()
        )
        for p in np.flatnonzero(self.running):
            self.epochs_run[p] = epoch + 1
            if loss[p] < self.best_loss[p]:
                self.best_loss[p] = loss[p]
                self.best_epoch[p] = epoch + 1
                self.waiting[p] = 0
                for best, param in zip(self.best, self.params, strict=True):
                    best[p] = param[p]
            else:
                self.waiting[p] += 1
                if self.waiting[p] >= self.config.patience:
                    self.running[p] = False

    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Predictions [P, N] on validation and test with each problem's best weights."""
        out = []
        for x in (self.data.val_x, self.data.test_x):
            out.append(self._logits(self.best, x).argmax(dim=2).cpu().numpy().astype(np.int64))
        return out[0], out[1]
