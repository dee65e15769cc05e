"""Training the `dense` probe's heads (`BatchedRun`): standardisation statistics, minibatches,
the written-out gradient and AdamW update, and the choice of epoch on validation mean Dice.

Batched like the `sgd` probes: every (training subset, seed) pair is one problem, and all train
together with their weights stacked ([P, K, D] and [P, K]). A seed draws the head's
initialisation and each epoch's image order (`torch.randperm`) from its own generator; a problem
whose subset has fewer minibatches sits out the remaining steps of an epoch, so each problem
takes exactly the steps the plain loop for its subset and seed takes, and a batched run equals
running the problems one at a time. A step gathers the live problems' minibatches (only the
images there: a short last batch is not padded) and computes every image's logits with its own
problem's head in one batched matmul, then one upsampling (two matrix products). The gradient is
written out: the cross-entropy's at the pixels, (softmax - one-hot) times the pixel's weight,
goes back through the transposed upsampling to the patches and through the head, and is summed
per problem in a fixed slot order. AdamW's update is written out on the stacked parameters with
each problem's own step count. No computation mixes problems and none accumulates through
atomics, so a problem's numbers are those of its run alone, whichever others share the batch,
and a GPU repeats them bit for bit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.dense_data import Split, Tokens
from ultrabench_eval.probes.dense_heads import (
    HeadStack,
    LinearSegmentationHead,
    image_chunks,
    split_counts,
)
from ultrabench_eval.probes.segmentation_metrics import scores_of_totals

if TYPE_CHECKING:
    from ultrabench_eval.probes.dense import DenseOptions

__all__ = ["BETAS", "EPS", "INIT_STD", "BatchedRun"]

BETAS = (0.9, 0.999)
EPS = 1e-8
INIT_STD = 0.01  # mmseg's normal_init of the segmentation head's 1x1 convolution


class BatchedRun:
    """The training state of every problem, and the loop.

    Parameters are [P, K, D + 1] (the weight, then the bias as the last column) in the
    standardised token space, in row order: rows sorted by minibatches per epoch, most first, so
    at any step the problems that still have a batch are a prefix of the rows. The
    standardisation is folded into the head at each step, ((x - m) / s) W^T + b =
    x (W / s)^T + (b - (W / s) m), so standardised tokens are never materialised.
    """

    def __init__(
        self,
        options: DenseOptions,
        train: Split,
        val: Split,
        subsets: list[np.ndarray],
        seeds: list[int],
        n_classes: int,
        grid: tuple[int, int],
    ) -> None:
        self.options, self.train_split, self.val_split = options, train, val
        self.n_classes, self.grid = n_classes, grid
        device = self.device = train.device
        self.sizes = np.array([len(s) for s in subsets], dtype=np.int64)
        self.batches = -(-self.sizes // options.batch_size)
        self.rows = np.argsort(-self.batches, kind="stable")  # the problem of each row
        self.subsets = [subsets[p] for p in self.rows]
        self.generators = [torch.Generator().manual_seed(int(seeds[p])) for p in self.rows]
        self.dim = dim = int(train.tokens.array.shape[2])
        self.shift, self.scale = _subset_statistics(train.tokens, self.subsets, options)
        self.upsampler = _Upsampler(grid, train.size, device)
        self.params = self._initialise(dim).to(device)
        self.exp_avg = torch.zeros_like(self.params)
        self.exp_avg_sq = torch.zeros_like(self.params)
        self.steps = torch.zeros(len(self.rows), 1, 1, dtype=torch.float64, device=device)
        self.best = self.params.clone()
        n_problems = len(subsets)
        self.best_score = np.full(n_problems, -np.inf)
        self.best_epoch = np.zeros(n_problems, dtype=np.int64)  # in problem order
        self.history: list[list[float]] = [[] for _ in range(n_problems)]

    def _initialise(self, dim: int) -> torch.Tensor:
        """[P, K, D + 1]: weights normal(0, INIT_STD) from each problem's generator, bias 0."""
        rows = []
        for generator in self.generators:
            weight = torch.randn(self.n_classes, dim, generator=generator) * INIT_STD
            rows.append(torch.cat([weight, torch.zeros(self.n_classes, 1)], dim=1))
        return torch.stack(rows)

    def _heads(self, params: torch.Tensor, rows: slice = slice(None)):
        """Heads on raw tokens of the rows' parameters: weight [n, K, D], bias [n, K]."""
        weight = params[:, :, : self.dim] / self.scale[rows, None, :]
        bias = params[:, :, self.dim] - torch.bmm(weight, self.shift[rows, :, None]).squeeze(2)
        return weight, bias

    def train(self) -> None:
        for epoch in range(self.options.epochs):
            lr = self._lr(epoch)
            table = self._epoch_batches()
            for step, index in enumerate(table):
                live = int((self.batches[self.rows] > step).sum())
                self._step(index[:live], lr)
            self._end_of_epoch(epoch)

    def _lr(self, epoch: int) -> float:
        options = self.options
        if options.schedule == "constant":
            return options.lr
        return options.lr * (1.0 - epoch / options.epochs)

    def _epoch_batches(self) -> np.ndarray:
        """The epoch's minibatches: per step and row, training image indices [S, P, B], -1
        past the end of a row's epoch. Each order is drawn from its problem's generator, as
        the plain loop draws it."""
        batch = self.options.batch_size
        n_steps = int(self.batches.max())
        table = np.full((len(self.rows), n_steps * batch), -1, dtype=np.int64)
        for row, subset in enumerate(self.subsets):
            order = torch.randperm(len(subset), generator=self.generators[row]).numpy()
            table[row, : len(subset)] = subset[order]
        return table.reshape(len(self.rows), n_steps, batch).transpose(1, 0, 2)

    @torch.no_grad()
    def _step(self, index: np.ndarray, lr: float) -> None:
        """One AdamW step of the first `len(index)` rows on their minibatches [k, B] (-1: no
        image), the gradient written out.

        Only the images there are computed, each with its own problem's head. The per-image
        gradients are summed per problem in the [k, B] slot layout of the minibatch table, so a
        problem's sum runs over the same slots in the same order whichever problems share the
        step; nothing accumulates through atomics, so a GPU gives the same bits run after run.
        """
        k, batch = index.shape
        rows_np, slots_np = np.nonzero(index >= 0)
        rows = torch.as_tensor(rows_np, device=self.device)
        slots = torch.as_tensor(slots_np, device=self.device)
        x = self.train_split.tokens.take(index[rows_np, slots_np])  # [M, T, D]
        target, valid = self.train_split.labels(index[rows_np, slots_np])
        n_images, size = len(x), tuple(valid.shape[1:])

        def per_problem(per_image: torch.Tensor) -> torch.Tensor:
            """Sums per row [k, ...] of per-image values [M, ...], over the slots in order."""
            padded = per_image.new_zeros(k, batch, *per_image.shape[1:])
            padded[rows, slots] = per_image
            return padded.sum(dim=1)

        # each problem's loss is the mean over its minibatch's pixels inside the scan
        inside = per_problem(valid.flatten(1).sum(dim=1, dtype=torch.float32))
        pixel_weight = valid / inside.clamp_min(1.0)[rows, None, None]
        weight, bias = self._heads(self.params[:k], slice(0, k))
        patch_logits = torch.baddbmm(bias[rows, None, :], x, weight[rows].transpose(1, 2))
        upsampler = self.upsampler
        logits = upsampler.up(patch_logits.transpose(1, 2).reshape(n_images, -1, *self.grid))
        # d(mean cross-entropy)/d(logits) at each pixel: (softmax - one-hot) x the pixel's weight
        pixel_grad = logits.softmax(dim=1)
        minus_one = pixel_grad.new_full((1, 1, 1, 1), -1.0).expand(n_images, 1, *size)
        pixel_grad.scatter_add_(1, target[:, None], minus_one).mul_(pixel_weight[:, None])
        patch_grad = upsampler.down(pixel_grad).flatten(2)  # [M, K, T]
        image_grad = torch.cat(
            [torch.bmm(patch_grad, x), patch_grad.sum(dim=2, keepdim=True)], dim=2
        )  # d/d(head on raw tokens) [M, K, D + 1]
        grad = per_problem(image_grad)
        # back through the folded standardisation: W' = W / s, b' = b - W' m
        grad_weight, grad_bias = grad[:, :, : self.dim], grad[:, :, self.dim :]
        grad_weight.sub_(grad_bias * self.shift[:k, None, :]).div_(self.scale[:k, None, :])
        self.steps[:k] += 1
        _adamw_(self.params[:k], grad, self.exp_avg[:k], self.exp_avg_sq[:k], self.steps[:k],
                lr, self.options.weight_decay)  # fmt: skip

    @torch.no_grad()
    def _end_of_epoch(self, epoch: int) -> None:
        """Validation mean Dice of every problem; a better one keeps the epoch's head."""
        weight, bias = self._heads(self.params)
        counts = split_counts(HeadStack(weight, bias), self.val_split, self.grid).sum(dim=1)
        scores = scores_of_totals(counts.cpu().numpy()).dice
        improved = []
        for row, (p, score) in enumerate(zip(self.rows, scores, strict=True)):
            self.history[p].append(float(score))
            if not math.isnan(score) and score > self.best_score[p]:
                self.best_score[p], self.best_epoch[p] = score, epoch + 1
                improved.append(row)
            elif self.best_epoch[p] == 0:  # no Dice yet (no foreground anywhere): keep the first
                self.best_epoch[p] = epoch + 1
                improved.append(row)
        if improved:
            rows = torch.as_tensor(improved, device=self.device)
            self.best[rows] = self.params[rows]

    def best_heads(self) -> list[LinearSegmentationHead]:
        """Each problem's head of its best epoch, on raw tokens, in problem order."""
        weight, bias = self._heads(self.best)
        weight, bias = weight.cpu().numpy(), bias.cpu().numpy()
        heads: list[LinearSegmentationHead | None] = [None] * len(self.rows)
        for row, p in enumerate(self.rows):
            heads[p] = LinearSegmentationHead(weight[row].copy(), bias[row].copy())
        return heads  # type: ignore[return-value]


def _adamw_(params, grad, exp_avg, exp_avg_sq, steps, lr: float, weight_decay: float) -> None:
    """torch.optim.AdamW's update (single-tensor form) on stacked rows, each with its own step
    count `steps` [k, 1, 1] (this step included)."""
    beta1, beta2 = BETAS
    params.mul_(1.0 - lr * weight_decay)
    exp_avg.lerp_(grad, 1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    step_size = (lr / (1.0 - beta1**steps)).float()
    correction2_sqrt = (1.0 - beta2**steps).sqrt().float()
    denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(EPS)
    params.sub_(exp_avg * step_size / denom)


def _subset_statistics(
    tokens: Tokens, subsets: list[np.ndarray], options: DenseOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the mean and population std of every token of its subset's images [P, D]
    (float32 on the device); 0 and 1 without standardisation. A constant dimension gets std 1.

    One pass over the training tokens: per image, the sums of (x - c) and (x - c)^2 in float64,
    with c the first training image's mean token (close to the data's mean, and equal to a
    constant dimension's value, so that one comes out with variance exactly 0)."""
    n, n_tokens, dim = tokens.array.shape
    device = tokens.device
    if not options.standardize:
        zeros = torch.zeros(len(subsets), dim, device=device)
        return zeros, torch.ones_like(zeros)
    centre = tokens.take(slice(0, 1))[0].double().mean(dim=0)
    sums = torch.empty(n, dim, dtype=torch.float64, device=device)
    squares = torch.empty_like(sums)
    for chunk in image_chunks(n, n_tokens * dim, device):
        x = tokens.take(chunk).double() - centre
        sums[chunk] = x.sum(dim=1)
        squares[chunk] = x.square().sum(dim=1)
    if not bool(torch.isfinite(squares).all()):  # a NaN or an infinity anywhere ends up here
        raise UserError(
            "dense probe: the training tokens hold NaN or infinite values (re-extract the "
            "features; check the model's precision)"
        )
    means, stds = [], []
    for subset in subsets:
        index = torch.as_tensor(subset, device=device)
        count = len(subset) * n_tokens
        offset = sums[index].sum(dim=0) / count
        variance = (squares[index].sum(dim=0) / count - offset.square()).clamp_min(0.0)
        std = variance.sqrt()
        means.append(centre + offset)
        stds.append(torch.where(std > 0, std, torch.ones_like(std)))
    return torch.stack(means).float(), torch.stack(stds).float()


class _Upsampler:
    """Bilinear upsampling (align_corners=False) of [N, K, h, w] to [N, K, H, W] as two
    matrix products, and its transpose, which takes a gradient at the pixels back to the
    patches. torch's own backward of `interpolate` adds with atomics on a GPU (not reproducible
    bit for bit); these products are, and on the CPU the transpose takes several times less
    time than that backward. The matrices are `interpolate`'s own 1-d weights (bilinear is
    their product), so the values are its values up to rounding."""

    def __init__(self, grid: tuple[int, int], size: tuple[int, int], device: torch.device):
        self.rows, self.columns = (
            F.interpolate(torch.eye(n)[:, None, :], size=m, mode="linear", align_corners=False)
            .squeeze(1)
            .T.contiguous()
            .to(device)
            for n, m in zip(grid, size, strict=True)
        )  # [H, h] and [W, w]

    def up(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.rows, patches @ self.columns.T)

    def down(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.rows.T, pixels) @ self.columns
