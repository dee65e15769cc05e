"""The `attentive` probe: V-JEPA's attentive classifier trained on frozen patch tokens.

Its inputs are patch tokens [N, T, D] (the bench gives them to probes with `needs_tokens`), not
pooled vectors. Per training problem (a training subset and its seed) and learning rate of the
grid, one attentive classifier (`attentive_pooler`: learned queries cross-attending over the
LayerNorm-ed tokens, a residual MLP block, a linear layer) is trained with AdamW on cross-entropy,
cosine annealing of the learning rate per epoch, and early stopping on validation loss keeping
the best epoch's weights; the learning rate is then chosen by validation macro-F1 (ties: the
lower validation loss, then the smaller rate). Test labels only score the final predictions.

Every problem, and every learning rate of each, trains at once as one batched model: parameters
stacked [problems, rates, N]. A problem's rates share its initialisation and its batch order, so
they differ in the rate alone. What one problem computes does not depend on the others:

    g = torch.Generator().manual_seed(seed)
    parameters drawn from g (`PoolerLayout.initialise`), the same for every rate;
    each epoch: order = torch.randperm(n, generator=g), batches of `batch_size` in that order
        (the last one smaller), mean cross-entropy over the batch, an AdamW step (betas 0.9,
        0.999, eps 1e-8; no weight decay on biases and LayerNorms, as V-JEPA);
    per epoch, the validation loss of each rate; a rate stops after `patience` epochs without
    improvement and keeps its best epoch's weights; the problem ends when all its rates have.

As in the `sgd` probes, problems are kept in order of batches per epoch, most first, so the
problems that still have a batch at a step are a prefix of the stacked rows, and a problem that
has stopped leaves the rows.

The defaults: V-JEPA's block as it is, its MLP block included (`mlp_ratio=0` drops it, which
saves two thirds of the weights and a third of the time at ViT-S width on a CPU, for little
change on small sets); heads 64 wide, as a ViT's; V-JEPA's weight decay. The learning rate is
not one value but a grid chosen on validation, as V-JEPA 2 trains several heads at once and
keeps the best: few-shot subsets take a few steps per epoch and want the larger rates, full
sets the smaller. The schedule is cosine to 0 without warm-up, as in V-JEPA's frozen
evaluations, but stepped per epoch, as the `sgd` probes anneal. The cost per image and copy is
O(T D heads) over the tokens and O(D^2) for the weights (see `attentive_pooler`), times
problems x rates copies.

Tokens: each split is normalised once (LayerNorm without its affine map; every copy applies its
own after pooling, see `attentive_pooler`) and kept on the device as float32 when that takes at
most `_RESIDENT_BYTES`; a larger split stays where it is (a read-only memory map, float16 is
fine) and the images a step or an evaluation chunk needs are read and moved then.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge, MinLen

from ultrabench_eval.core.device import AUTO, resolve_device
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.attentive_pooler import PoolerLayout, PoolerShape, normalise_tokens
from ultrabench_eval.probes.base import BatchedProbe, ProbeResult
from ultrabench_eval.probes.metrics import macro_f1, macro_f1_batched
from ultrabench_eval.probes.options import FORBID_UNKNOWN, DeviceOption, Positive, parse_options

__all__ = ["HEAD_WIDTH", "AttentiveOptions", "AttentiveProbe", "choose_heads"]

Count = Annotated[int, Ge(1)]

# num_heads unset: heads this wide when they divide the token width (a ViT's head width: 6
# heads for ViT-S, 12 for ViT-B, 16 for ViT-L, V-JEPA's choices for the last two), else one head.
HEAD_WIDTH = 64
BETAS = (0.9, 0.999)
EPS = 1e-8

# A split whose normalised float32 tokens take at most this stays on the device whole.
_RESIDENT_BYTES = 2 << 30
# Evaluation runs over chunks of images so that its largest intermediate (every copy's pooled
# tokens) holds about this many floats.
_EVAL_ELEMENTS = 1 << 24
# Images normalised per pass when a split is made resident.
_READ_CHUNK = 256


@dataclass(frozen=True)
class AttentiveOptions:
    """The options of the `attentive` probe (see `AttentiveProbe`)."""

    __pydantic_config__ = FORBID_UNKNOWN

    num_queries: Count = 1
    num_heads: Count | None = None  # None: see choose_heads
    mlp_ratio: Annotated[float, Ge(0)] = 4.0  # MLP block width / token width; 0: no MLP block
    lrs: Annotated[tuple[Positive, ...], MinLen(1)] = (1e-3, 3e-3, 1e-2)
    weight_decay: Annotated[float, Ge(0)] = 1e-3  # V-JEPA's
    batch_size: Count = 32
    max_epochs: Count = 50
    patience: Count = 10  # epochs without a better validation loss before a rate stops
    device: DeviceOption = AUTO


def choose_heads(dim: int, num_heads: int | None) -> int:
    """The number of attention heads for tokens of width `dim`: `num_heads`, which must divide
    it, or (None) dim / HEAD_WIDTH when that is whole, else 1."""
    if num_heads is None:
        return dim // HEAD_WIDTH if dim % HEAD_WIDTH == 0 else 1
    if dim % num_heads:
        raise UserError(
            f"attentive probe: num_heads={num_heads} does not divide the token width {dim} "
            f"(choose a divisor of {dim}, or leave num_heads unset)"
        )
    return num_heads


class AttentiveProbe(BatchedProbe):
    """V-JEPA's attentive probe on patch tokens [N, T, D]: learned queries cross-attend over the
    LayerNorm-ed tokens (multi-head), a residual MLP block, the mean over queries, a linear
    layer; AdamW with cosine annealing and early stopping on validation loss, the learning rate
    chosen on validation macro-F1. All subsets, seeds and learning rates train at once.

    Options (`AttentiveOptions`): `num_queries` (1), `num_heads` (None: heads 64 wide when 64
    divides the token width, else 1; a number that does not divide it is an error at fit time),
    `mlp_ratio` (4.0, V-JEPA's; 0 drops the MLP block), `lrs` (the learning-rate grid, 1e-3,
    3e-3, 1e-2), `weight_decay` (0.001, V-JEPA's), `batch_size` (32), `max_epochs` (50),
    `patience` (10), `device` ("auto": the GPU when there is one).
    """

    name = "attentive"
    uses_seed = True
    needs_tokens = True  # fit on patch tokens [N, T, D], not pooled features

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(AttentiveOptions, options)
        self.lrs = tuple(sorted(set(self.options.lrs)))
        self.device = resolve_device(self.options.device)

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
        train, val, test = (
            _Tokens(x, device, split)
            for x, split in ((train_x, "train"), (val_x, "validation"), (test_x, "test"))
        )
        train_y, val_y, test_y = (
            _labels(y, tokens, n_classes)
            for y, tokens in ((train_y, train), (val_y, val), (test_y, test))
        )
        for other in (val, test):
            if other.dim != train.dim:
                raise UserError(
                    f"attentive probe: {other.split} tokens are {other.dim} wide but train "
                    f"tokens {train.dim} (use tokens of one model for every split)"
                )
        for split in (val, test):
            if split.n == 0:
                raise UserError(f"attentive probe: the {split.split} split has no images")
        subsets = _checked_subsets(subsets, seeds, train.n)
        options = self.options
        heads = choose_heads(train.dim, options.num_heads)
        shape = PoolerShape(
            dim=train.dim,
            heads=heads,
            queries=options.num_queries,
            hidden=int(options.mlp_ratio * train.dim),  # as V-JEPA: floor
            classes=n_classes,
        )
        run = _Training(
            options, self.lrs, PoolerLayout(shape), train, train_y, val, val_y, subsets, seeds
        )
        run.train()
        val_pred, test_pred = run.predict(val), run.predict(test)  # [P, J, N]
        seconds = (time.perf_counter() - started) / max(len(subsets), 1)
        settings = {k: v for k, v in asdict(options).items() if k != "device"}
        results = []
        for p, subset in enumerate(subsets):
            scores = macro_f1_batched(val_y, val_pred[p])
            # best validation macro-F1; ties: the lower validation loss, then the smaller rate
            best = min(range(len(self.lrs)), key=lambda j: (-scores[j], run.best_loss[p, j], j))
            results.append(
                ProbeResult(
                    test_pred=test_pred[p, best],
                    val_pred=val_pred[p, best],
                    test_macro_f1=100.0 * macro_f1(test_y, test_pred[p, best]),
                    val_macro_f1=100.0 * float(scores[best]),
                    params={
                        **settings,
                        "lrs": list(self.lrs),
                        "num_heads": heads,
                        "lr": self.lrs[best],
                        "best_epoch": int(run.best_epoch[p, best]),
                        "epochs_run": int(run.epochs_run[p, best]),
                        "best_val_loss": float(run.best_loss[p, best]),
                        "val_macro_f1_per_lr": [float(100 * s) for s in scores],
                        "train_size": len(subset),
                        "device": str(device),
                    },
                    seconds=seconds,
                )
            )
        return results


class _Tokens:
    """One split's patch tokens, normalised (`normalise_tokens`) on the device when read; the
    whole split is kept there when small enough (`_RESIDENT_BYTES`)."""

    def __init__(self, x: Any, device: torch.device, split: str) -> None:
        # a memory map stays one: only the images asked for are read
        self.x = x if isinstance(x, np.ndarray) else np.asarray(x)
        if self.x.ndim != 3 or not np.issubdtype(self.x.dtype, np.floating):
            raise UserError(
                f"attentive probe: {split} features have shape {self.x.shape} and dtype "
                f"{self.x.dtype}, but it needs float patch tokens [N, T, D] (extract tokens, "
                "not pooled features, for this probe)"
            )
        self.n, self.length, self.dim = (int(v) for v in self.x.shape)
        self.device, self.split = device, split
        self.resident: torch.Tensor | None = None
        if self.n * self.length * self.dim * 4 <= _RESIDENT_BYTES:
            chunks = [x for _, x in self._read_chunks(_READ_CHUNK)]
            self.resident = torch.cat(chunks) if chunks else self._read(slice(0, 0))

    def _read(self, index: np.ndarray | slice) -> torch.Tensor:
        # a copy: the caller's arrays (perhaps read-only maps) are never handed to torch
        host = torch.tensor(np.asarray(self.x[index]))
        tokens = normalise_tokens(host.to(self.device))
        if not bool(torch.isfinite(tokens).all()):
            raise UserError(
                f"attentive probe: the {self.split} tokens hold NaN or infinite values "
                "(re-extract them; check the model's precision)"
            )
        return tokens

    def _read_chunks(self, size: int) -> Iterator[tuple[int, torch.Tensor]]:
        for start in range(0, self.n, size):
            yield start, self._read(slice(start, start + size))

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """The normalised tokens of images `index` (a CPU long tensor): [len, T, D]."""
        if self.resident is not None:
            return self.resident.index_select(0, index.to(self.device))
        # each image once, in file order (kind to a memory map), then repeated on the device
        unique, inverse = torch.unique(index, return_inverse=True)
        return self._read(unique.numpy()).index_select(0, inverse.to(self.device))

    def chunks(self, size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, normalised tokens [<= size, T, D]) over the split, in order."""
        if self.resident is None:
            yield from self._read_chunks(size)
            return
        for start in range(0, self.n, size):
            yield start, self.resident[start : start + size]


def _labels(y: Any, tokens: _Tokens, n_classes: int) -> np.ndarray:
    y = np.asarray(y).astype(np.int64).ravel()
    if len(y) != tokens.n:
        raise UserError(
            f"attentive probe: {tokens.n} {tokens.split} images but {len(y)} labels "
            "(give one label per image)"
        )
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise UserError(
            f"attentive probe: {tokens.split} labels must lie in [0, {n_classes}), got "
            f"{y.min()}..{y.max()} (check n_classes)"
        )
    return y


def _checked_subsets(
    subsets: Sequence[np.ndarray], seeds: Sequence[int], n_train: int
) -> list[np.ndarray]:
    out = [np.asarray(s, dtype=np.int64).ravel() for s in subsets]
    if len(out) != len(seeds):
        raise UserError(
            f"attentive probe: {len(out)} training subsets but {len(seeds)} seeds (one each)"
        )
    for i, subset in enumerate(out):
        if not len(subset):
            raise UserError(f"attentive probe: training subset {i} is empty (give non-empty ones)")
        if subset.min() < 0 or subset.max() >= n_train:
            raise UserError(
                f"attentive probe: training subset {i} indexes image {subset.max()}, but the "
                f"train split has {n_train} (indices must lie in [0, {n_train}))"
            )
    return out


class _Training:
    """The training state of every problem and learning rate, and the loop.

    `params`, `exp_avg`, `exp_avg_sq` [L, J, N]: one row per live problem (ordered by batches
    per epoch, most first), one slice per learning rate. `best` [P, J, N] keeps every problem's
    best weights per rate, in problem order. A rate that has stopped stays in its problem's row,
    left out of the updates, until the whole problem stops.
    """

    def __init__(
        self,
        options: AttentiveOptions,
        lrs: tuple[float, ...],
        layout: PoolerLayout,
        train: _Tokens,
        train_y: np.ndarray,
        val: _Tokens,
        val_y: np.ndarray,
        subsets: list[np.ndarray],
        seeds: Sequence[int],
    ) -> None:
        self.options, self.layout, self.lrs = options, layout, lrs
        self.train_tokens, self.val_tokens = train, val
        device = self.device = train.device
        self.train_y = torch.as_tensor(train_y, device=device)
        self.val_y = torch.as_tensor(val_y, device=device)
        self.subsets = [torch.as_tensor(s) for s in subsets]
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        n_problems, n_rates = len(subsets), len(lrs)
        self.sizes = np.array([len(s) for s in subsets], dtype=np.int64)
        self.batches = -(-self.sizes // options.batch_size)  # per epoch
        initial = [layout.initialise(g) for g in self.generators]
        self.best = torch.stack(initial)[:, None].repeat(1, n_rates, 1).to(device)
        self.rows = np.argsort(-self.sizes, kind="stable")  # the problem of each row
        self.params = self.best[torch.as_tensor(self.rows, device=device)]
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        shape = (n_problems, n_rates)
        self.best_loss = np.full(shape, np.inf)
        self.best_epoch = np.zeros(shape, dtype=np.int64)
        self.epochs_run = np.zeros(shape, dtype=np.int64)
        self.waiting = np.zeros(shape, dtype=np.int64)
        self.running = np.ones(shape, dtype=bool)

    # --- training ---------------------------------------------------------------------------
    def train(self) -> None:
        max_epochs = self.options.max_epochs
        for epoch in range(max_epochs):
            if not len(self.rows):
                break
            # cosine annealing per epoch, as torch's CosineAnnealingLR over max_epochs
            factor = (1.0 + math.cos(math.pi * epoch / max_epochs)) / 2.0
            optimiser = _StackedAdamW(
                self.layout,
                (self.params, self.exp_avg, self.exp_avg_sq),
                self.running[self.rows],
                [lr * factor for lr in self.lrs],
                self.options.weight_decay,
            )
            index, weight = self._epoch_batches()
            batches = self.batches[self.rows]
            for step in range(index.shape[0]):
                k = int((batches > step).sum())  # the rows that still have a batch: a prefix
                grads = self._gradients(k, index[step, :k], weight[step, :k])
                # a live problem has taken every batch of every epoch so far
                counts = torch.as_tensor(epoch * batches[:k] + step + 1, dtype=torch.float32)
                optimiser.step(k, grads, counts.to(self.device).unbind(0))
            self._end_of_epoch(epoch)

    def _epoch_batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per step and row, the examples [S, L, B] (CPU) and their weights in the batch's mean
        loss, 1 / the batch's size [S, L, B] (device; 0 past the end of a problem's epoch).
        The orders are drawn from each problem's generator, as the plain loop draws them."""
        batch, rows = self.options.batch_size, self.rows
        n_rows, n_steps = len(rows), int(self.batches[rows[0]])
        index = torch.zeros(n_rows, n_steps * batch, dtype=torch.long)
        for row, p in enumerate(rows):
            order = torch.randperm(int(self.sizes[p]), generator=self.generators[p])
            index[row, : self.sizes[p]] = self.subsets[p][order]
        index = index.view(n_rows, n_steps, batch).transpose(0, 1).contiguous()
        left = torch.as_tensor(self.sizes[rows])[None, :] - torch.arange(n_steps)[:, None] * batch
        counts = left.clamp(0, batch)[:, :, None]  # [S, L, 1]
        weight = torch.where(torch.arange(batch) < counts, 1.0 / counts.clamp_min(1).float(), 0.0)
        return index, weight.to(self.device)

    def _gradients(
        self, k: int, index: torch.Tensor, weight: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Each parameter's gradient [k, J, *shape] for rows :k on their batches `index`
        [k, B] (CPU) with loss weights [k, B]: of the sum of the per-problem, per-rate mean
        losses, so each copy gets its own."""
        batch = index.shape[1]
        tokens = self.train_tokens.take(index.flatten())
        tokens = tokens.view(k, batch, self.train_tokens.length, -1)
        labels = self.train_y[index.to(self.device)]  # [k, B]
        n_rates = self.params.shape[1]
        with torch.enable_grad():
            leaves = {
                name: view.detach().requires_grad_(True)
                for name, view in self.layout.views(self.params[:k]).items()
            }
            log_probs = self.layout.logits(leaves, tokens).log_softmax(dim=3)  # [k, J, B, K]
            picked = log_probs.gather(3, labels[:, None, :, None].expand(-1, n_rates, -1, 1))
            loss = -(picked.squeeze(3) * weight[:, None, :]).sum()
            grads = torch.autograd.grad(loss, list(leaves.values()))
        return {name: grad.contiguous() for name, grad in zip(leaves, grads, strict=True)}

    @torch.no_grad()
    def _end_of_epoch(self, epoch: int) -> None:
        """Validation loss of every live problem and rate; the host reads it once per epoch."""
        n_rows, n_rates = self.params.shape[:2]
        losses = self._val_losses().view(n_rows, n_rates).tolist()
        improved: list[tuple[int, int]] = []
        keep: list[int] = []
        for row, p in enumerate(self.rows):
            for j in range(n_rates):
                if not self.running[p, j]:
                    continue
                self.epochs_run[p, j] = epoch + 1
                if losses[row][j] < self.best_loss[p, j]:
                    self.best_loss[p, j] = losses[row][j]
                    self.best_epoch[p, j] = epoch + 1
                    self.waiting[p, j] = 0
                    improved.append((row, j))
                else:
                    self.waiting[p, j] += 1
                    if self.waiting[p, j] >= self.options.patience:
                        self.running[p, j] = False
            if self.running[p].any():
                keep.append(row)
        device = self.device
        if improved:
            rows, rates = (torch.as_tensor(v, device=device) for v in zip(*improved, strict=True))
            problems = torch.as_tensor(self.rows, device=device)[rows]
            self.best[problems, rates] = self.params[rows, rates]
        if len(keep) < n_rows:
            kept = torch.as_tensor(keep, dtype=torch.long, device=device)
            self.params = self.params[kept]
            self.exp_avg, self.exp_avg_sq = self.exp_avg[kept], self.exp_avg_sq[kept]
            self.rows = self.rows[keep]

    def _val_losses(self) -> torch.Tensor:
        """Mean validation cross-entropy of every live row and rate, flattened: [L * J]."""
        flat = self.params.flatten(0, 1)
        total = torch.zeros(len(flat), device=self.device, dtype=torch.float64)
        for start, logits in _chunked_logits(self.layout, flat, self.val_tokens):
            labels = self.val_y[start : start + logits.shape[1]]
            log_probs = logits.log_softmax(dim=2)  # [R, c, K]
            picked = log_probs.gather(2, labels[None, :, None].expand(len(flat), -1, 1))
            total -= picked.squeeze(2).double().sum(dim=1)
        return (total / max(self.val_tokens.n, 1)).float()

    @torch.no_grad()
    def predict(self, tokens: _Tokens) -> np.ndarray:
        """Predictions [P, J, N] of every problem's best weights per rate."""
        n_problems, n_rates = self.best.shape[:2]
        out = np.zeros((n_problems * n_rates, tokens.n), dtype=np.int64)
        for start, logits in _chunked_logits(self.layout, self.best.flatten(0, 1), tokens):
            out[:, start : start + logits.shape[1]] = logits.argmax(dim=2).cpu().numpy()
        return out.reshape(n_problems, n_rates, tokens.n)


class _StackedAdamW:
    """torch.optim.AdamW's update (its fused kernel) of stacked copies [L, J, N] for one epoch:
    each rate its own learning rate, the rates that have stopped left out, weight decay on the
    layout's decayed tensors only. The kernel takes lists of tensors; they are every parameter
    of every (row, rate) that trains this epoch, as views of the stacked state, listed once."""

    def __init__(
        self,
        layout: PoolerLayout,
        state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        running: np.ndarray,
        lrs: list[float],
        weight_decay: float,
    ) -> None:
        views = [layout.views(tensor) for tensor in state]  # params, exp_avg, exp_avg_sq
        self.groups = []
        for j, lr in enumerate(lrs):
            rows = np.flatnonzero(running[:, j])  # ascending: those below k are a prefix
            for names, decay in ((layout.decayed, weight_decay), (layout.undecayed, 0.0)):
                lists = [[v[name][r, j] for r in rows for name in names] for v in views]
                self.groups.append((j, lr, decay, rows, names, lists))

    def step(self, k: int, grads: dict[str, torch.Tensor], steps: Sequence[torch.Tensor]) -> None:
        """One update of rows :k; `steps`: each row's step count, this step included."""
        beta1, beta2 = BETAS
        for j, lr, decay, rows, names, (params, exp_avgs, exp_avg_sqs) in self.groups:
            live = rows[: int(np.searchsorted(rows, k))]
            if not len(live):
                continue
            n = len(live) * len(names)
            torch._fused_adamw_(
                params[:n],
                [grads[name][r, j] for r in live for name in names],
                exp_avgs[:n],
                exp_avg_sqs[:n],
                [],
                [steps[r] for r in live for _ in names],
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=decay,
                eps=EPS,
                amsgrad=False,
                maximize=False,
            )


def _chunked_logits(
    layout: PoolerLayout, params: torch.Tensor, tokens: _Tokens
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, logits [R, c, K]) of copies `params` [R, N] over the split, chunk by chunk."""
    shape = layout.shape
    per_copy = shape.heads * (shape.dim + tokens.length) + shape.hidden + shape.dim
    per_image = len(params) * shape.queries * per_copy
    size = max(1, _EVAL_ELEMENTS // max(per_image, 1))
    views = layout.views(params[None])
    for start, x in tokens.chunks(size):
        yield start, layout.logits(views, x[None])[0]
