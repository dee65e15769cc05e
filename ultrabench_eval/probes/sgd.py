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

What keeps it fast at the real size (25 problems, ~900 steps per epoch for the full subsets):
a step is a handful of large ops on the problems that still have a batch (rows sorted by
batches per epoch, so these are a prefix; stopped problems are dropped), with no Python loop
over problems and no host synchronisation. Each epoch's batch orders are drawn up front into one
[steps, problems, batch] index table; a plain linear layer gets its gradient written out
((softmax - one-hot) / batch size, two batched matmuls); AdamW is torch's fused kernel. The
validation loss of every live problem is one matmul on the device, read by the host once per
epoch.
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
    """The training state of every problem, and the loop.

    A problem's parameters are one flat row: per layer the weight [out, in] (nn.Linear's
    layout) then the bias [out]; for a plain linear layer the weight [K, D + 1] with the bias as
    its last column. The state the loop updates (`params`, `exp_avg`, `exp_avg_sq`, [L, N])
    holds one row per live problem, ordered by batches per epoch, most first: at any step of an
    epoch the problems that still have a batch are a prefix of the rows, and a step touches
    only that prefix. A problem that stops is dropped from the rows; `best` [P, N] keeps every
    problem's best parameters, in problem order.

    A plain linear layer (no hidden layer, no standardisation) is trained with its gradient
    written out: the training features get a column of ones, so a step is two batched matmuls
    and a softmax. Otherwise autograd gives the gradient. Either way AdamW is torch's fused
    kernel, one call per step.
    """

    def __init__(self, config: SGDConfig, data: _Data, subsets, seeds, n_classes: int) -> None:
        self.config, self.data, self.n_classes = config, data, n_classes
        # on the CPU: the batch orders are drawn there, from each seed's CPU generator
        self.subsets = [torch.as_tensor(np.asarray(s), dtype=torch.long) for s in subsets]
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        n_problems = len(subsets)
        self.sizes = np.array([len(s) for s in self.subsets], dtype=np.int64)
        self.batches = -(-self.sizes // config.batch_size)  # per epoch
        self.dim = dim = data.train_x.shape[1]
        self.shift, self.scale = self._standardisation(dim)
        widths = [dim, config.hidden, n_classes] if config.hidden else [dim, n_classes]
        self.shapes = [(fan_out, fan_in) for fan_in, fan_out in itertools.pairwise(widths)]
        self.explicit = config.hidden is None and not config.standardize
        if self.explicit:
            ones = torch.ones(len(data.train_x), 1, device=data.device)
            self.train_xa = torch.cat([data.train_x, ones], dim=1)
        self.best = self._initialise()
        self.rows = np.argsort(-self.sizes, kind="stable")  # the problem of each row
        self.params = self.best[torch.as_tensor(self.rows, device=data.device)]
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
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
            mean, std = train_statistics(self.data.train_x[subset.to(device)].double())
            shifts.append(mean.float())
            scales.append(std.float())
        return torch.stack(shifts), torch.stack(scales)

    def _initialise(self) -> torch.Tensor:
        """[P, N]: each problem's parameters drawn as nn.Linear draws them, layer by layer,
        from its own generator."""
        rows = []
        for generator in self.generators:
            row = []
            for fan_out, fan_in in self.shapes:
                weight = torch.empty(fan_out, fan_in)
                torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(fan_in)
                bias = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
                if self.explicit:
                    row.append(torch.cat([weight, bias[:, None]], dim=1).flatten())
                else:
                    row += [weight.flatten(), bias]
            rows.append(torch.cat(row))
        return torch.stack(rows).to(self.data.device)

    # --- the model --------------------------------------------------------------------------
    def _layers(self, params: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views of flat parameters [n, N]: (weight [n, out, in], bias [n, out]) per layer."""
        n = len(params)
        if self.explicit:
            weight = params.view(n, self.n_classes, self.dim + 1)
            return [(weight[:, :, : self.dim], weight[:, :, self.dim])]
        layers, start = [], 0
        for fan_out, fan_in in self.shapes:
            weight = params[:, start : start + fan_out * fan_in].unflatten(1, (fan_out, fan_in))
            start += fan_out * fan_in
            layers.append((weight, params[:, start : start + fan_out]))
            start += fan_out
        return layers

    def _logits(self, layers, x: torch.Tensor, shift, scale) -> torch.Tensor:
        """x [P, B, D] (or [N, D] shared by every problem) -> logits [P, B, K] ([P, N, K]).

        The standardisation is folded into the first layer, ((x - m) / s) W^T + b =
        x (W / s)^T + (b - (W / s) m), so shared inputs are never copied per problem; shared
        inputs go through the first layer as one matmul with every problem's weights.
        """
        (weight, bias), *rest = layers
        if self.config.standardize:
            weight = weight / scale[:, None, :]
            bias = bias - torch.bmm(weight, shift[:, :, None]).squeeze(2)
        if x.ndim == 2:
            n_problems, width = weight.shape[:2]
            flat = weight.reshape(n_problems * width, -1)
            h = torch.addmm(bias.reshape(-1), x, flat.T).view(len(x), n_problems, width)
            h = h.transpose(0, 1)
        else:
            h = torch.baddbmm(bias[:, None, :], x, weight.transpose(1, 2))
        for weight, bias in rest:
            h = torch.baddbmm(bias[:, None, :], torch.relu(h), weight.transpose(1, 2))
        return h

    # --- training ---------------------------------------------------------------------------
    def train(self) -> None:
        for epoch in range(self.config.max_epochs):
            if not len(self.rows):
                break
            lr = self._lr(epoch)
            index, weight = self._epoch_batches()
            runs = self._runs()
            for k, steps in self._prefixes():
                runs_k = [run for run in runs if run[1] <= k]
                optimiser = _StackedAdamW(
                    self.config, lr, self.params, self.exp_avg, self.exp_avg_sq, runs_k
                )
                index_k, weight_k = index[steps, :k], weight[steps, :k]
                # minus the one-hot targets over the batch size [n, k, K, B]: the mean loss is
                # their product with the log-softmax, the logits' gradient softmax * weight
                # plus them
                labels = self.data.train_y[index_k]
                targets = torch.zeros(*labels.shape[:2], self.n_classes, labels.shape[2])
                targets = targets.to(labels.device).scatter_(2, labels[:, :, None], -weight_k)
                # each run's AdamW step count at each step: live problems have taken all their
                # batches in every epoch
                taken = [epoch * batches for _, _, batches in runs_k]
                counts = np.add.outer(np.arange(steps.start, steps.stop) + 1, taken)
                counts = torch.as_tensor(counts, dtype=torch.float32).to(self.data.device)
                per_step = zip(
                    index_k.flatten(1).unbind(0), targets.unbind(0), weight_k.unbind(0),
                    counts.unbind(0), strict=True,
                )  # fmt: skip
                if self.explicit:
                    self._linear_steps(k, optimiser, per_step)
                else:
                    self._autograd_steps(k, optimiser, per_step)
            self._end_of_epoch(epoch)

    def _lr(self, epoch: int) -> float:
        config = self.config
        if not config.cosine:
            return config.lr
        return config.lr * (1.0 + math.cos(math.pi * epoch / config.max_epochs)) / 2.0

    def _prefixes(self) -> list[tuple[int, slice]]:
        """(k, steps): the steps of an epoch at which the first k rows have a batch."""
        batches = self.batches[self.rows]
        out, start = [], 0
        for end in sorted(set(batches.tolist())):
            out.append((int((batches >= end).sum()), slice(start, end)))
            start = end
        return out

    def _runs(self) -> list[tuple[int, int, int]]:
        """(start, end, batches per epoch): the runs of rows with as many batches per epoch,
        so that have taken as many AdamW steps and share a step count."""
        batches = self.batches[self.rows]
        ends = [*np.flatnonzero(np.diff(batches)) + 1, len(batches)]
        starts = [0, *ends[:-1]]
        return [(int(a), int(b), int(batches[a])) for a, b in zip(starts, ends, strict=True)]

    def _epoch_batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's batches, on the device: per step and row, the examples [S, L, B] and
        their weights in the mean loss, 1 / the batch's size [S, L, 1, B] (0 past the end of a
        problem's epoch).

        The orders are drawn here, on the CPU, each from its problem's generator, as the
        plain loop draws them."""
        batch, rows, device = self.config.batch_size, self.rows, self.data.device
        n_rows, n_steps = len(rows), int(self.batches[rows[0]])
        index = torch.zeros(n_rows, n_steps * batch, dtype=torch.long)
        for row, p in enumerate(rows):
            order = torch.randperm(int(self.sizes[p]), generator=self.generators[p])
            index[row, : self.sizes[p]] = self.subsets[p][order]
        index = index.view(n_rows, n_steps, batch).transpose(0, 1).contiguous()
        left = torch.as_tensor(self.sizes[rows])[None, :] - torch.arange(n_steps)[:, None] * batch
        counts = left.clamp(0, batch)[:, :, None, None]  # [S, L, 1, 1]
        inside = torch.arange(batch) < counts
        weight = torch.where(inside, 1.0 / counts.clamp_min(1).float(), 0.0)
        return index.to(device), weight.to(device)

    def _linear_steps(self, k: int, optimiser: _StackedAdamW, per_step) -> None:
        """The steps at which rows :k have a batch, the gradient written out."""
        batch, width = self.config.batch_size, self.dim + 1
        features = self.train_xa
        weight = self.params[:k].view(k, self.n_classes, width)
        for index, target, w, count in per_step:
            x = features.index_select(0, index).view(k, batch, width)
            # the logits as [k, K, B]: the faster product for so few classes
            probs = torch.bmm(weight, x.transpose(1, 2)).softmax(dim=1)
            # d(mean cross-entropy)/d(logits) = (softmax - one-hot) / batch size
            grad = torch.bmm(torch.addcmul(target, probs, w), x)
            optimiser.step(grad.view(k, -1), count)

    def _autograd_steps(self, k: int, optimiser: _StackedAdamW, per_step) -> None:
        """The steps at which rows :k have a batch, the gradient from autograd."""
        batch = self.config.batch_size
        params = self.params[:k]
        shift, scale = self._row_statistics(k)
        for index, target, _, count in per_step:
            x = self.data.train_x.index_select(0, index).view(k, batch, -1)
            with torch.enable_grad():
                leaf = params.detach().requires_grad_(True)
                logits = self._logits(self._layers(leaf), x, shift, scale)
                # the sum of the per-problem mean losses: each problem's gradient is its own
                loss = (target.transpose(1, 2) * torch.log_softmax(logits, dim=2)).sum()
                (grad,) = torch.autograd.grad(loss, leaf)
            optimiser.step(grad, count)

    def _row_statistics(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(self.rows[:k], device=self.data.device)
        return self.shift[rows], self.scale[rows]

    @torch.no_grad()
    def _end_of_epoch(self, epoch: int) -> None:
        """Validation loss of every live problem at once; the host reads it once per epoch."""
        shift, scale = self._row_statistics(len(self.rows))
        logits = self._logits(self._layers(self.params), self.data.val_x, shift, scale)
        labels = self.data.val_y.expand(len(self.rows), -1)
        loss = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), labels, reduction="none"
        ).mean(dim=1)
        improved, keep = [], []
        for row, (p, value) in enumerate(zip(self.rows, loss.tolist(), strict=True)):
            self.epochs_run[p] = epoch + 1
            if value < self.best_loss[p]:
                self.best_loss[p] = value
                self.best_epoch[p] = epoch + 1
                self.waiting[p] = 0
                improved.append(row)
            else:
                self.waiting[p] += 1
                if self.waiting[p] >= self.config.patience:
                    self.running[p] = False
            if self.running[p]:
                keep.append(row)
        device = self.data.device
        if improved:
            into = torch.as_tensor(self.rows[improved], device=device)
            improved_rows = torch.as_tensor(improved, device=device)
            self.best.index_copy_(0, into, self.params[improved_rows])
        if len(keep) < len(self.rows):
            kept = torch.as_tensor(keep, dtype=torch.long, device=device)
            self.params = self.params[kept]
            self.exp_avg, self.exp_avg_sq = self.exp_avg[kept], self.exp_avg_sq[kept]
            self.rows = self.rows[keep]

    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Predictions [P, N] on validation and test with each problem's best weights."""
        out = []
        layers = self._layers(self.best)
        for x in (self.data.val_x, self.data.test_x):
            logits = self._logits(layers, x, self.shift, self.scale)
            out.append(logits.argmax(dim=2).cpu().numpy().astype(np.int64))
        return out[0], out[1]


class _StackedAdamW:
    """torch.optim.AdamW's update (its fused kernel) on the first rows of stacked per-problem
    parameters [L, N]: one tensor per run of rows that have taken as many steps, so share a
    step count."""

    def __init__(self, config: SGDConfig, lr: float, params, exp_avgs, exp_avg_sqs, runs):
        self.sizes = [end - start for start, end, _ in runs]
        self.params, self.exp_avgs, self.exp_avg_sqs = (
            [s[start:end] for start, end, _ in runs] for s in (params, exp_avgs, exp_avg_sqs)
        )  # fmt: skip
        beta1, beta2 = config.betas
        self.options = {
            "lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": config.weight_decay,
            "eps": config.eps, "amsgrad": False, "maximize": False,
        }  # fmt: skip

    def step(self, grad: torch.Tensor, counts: torch.Tensor) -> None:
        """`grad` [k, N], contiguous (the kernel reads it as laid out); `counts` [runs]: each
        run's step count, this step included (the kernel reads them, as torch.optim's state)."""
        torch._fused_adamw_(
            self.params, grad.split_with_sizes(self.sizes), self.exp_avgs, self.exp_avg_sqs,
            [], list(counts.unbind(0)), **self.options,
        )  # fmt: skip
