"""The `dense` probe: linear semantic segmentation on frozen patch tokens.

DINOv2's linear segmentation protocol (Oquab et al. 2023, "linear"; its released mmseg configs),
adapted to the benchmark's few-shot sweeps. What is the same:

- the head is linear and per patch (a 1x1 convolution) on the encoder's last-layer patch tokens,
  and nothing else is trained;
- its logits [K, h, w] are upsampled bilinearly (align_corners=False) to the label resolution,
  the loss is the pixel-wise cross-entropy there, and the prediction is the argmax of the
  upsampled logits;
- AdamW (weight decay 1e-4, betas (0.9, 0.999)) with a linearly decaying ("poly", power 1)
  learning rate; the head starts at normal(0, 0.01) weights and zero bias (mmseg's
  initialisation of its `conv_seg`);
- the score is mIoU over all classes (and, here, mean foreground Dice), aggregated over the
  test set (`segmentation_metrics`).

What differs, and why:

- DINOv2 puts a BatchNorm before the 1x1 convolution; here the tokens are standardised per
  dimension with the training subset's mean and population std (over all its tokens), a
  BatchNorm frozen at the training statistics. Its affine part is redundant with the linear
  head, and frozen statistics keep the fit independent of the minibatch composition (a
  batch-statistics BatchNorm would make a problem's fit depend on which images share its
  batches, and 1-image subsets degenerate). `standardize=False` trains on raw tokens.
- DINOv2 trains 40k iterations at batch 16 (about 30 epochs of ADE20k) on 512x512 crops with
  augmentation, and reports the last iterate; here there is no augmentation (the tokens are
  frozen, extracted once), training runs a fixed number of epochs (default 30) of minibatches
  of images, and the epoch with the best validation mean Dice gives the head (ties: the
  earliest). The learning rate decays per epoch, without DINOv2's 1,500-iteration warmup,
  and starts at 1e-2, not 1e-3: 30 epochs are far fewer steps than 40k iterations (2,000 for
  1,000 training images, 30 for a 10-image few-shot subset), and at 1e-3 the heads are still
  improving when training stops (on tokens generated as `benchmarks/perf_dense` makes them, 10,
  50 and 100 training images of 14 x 14 x 768: best epochs 30, 30, 29 and test Dice 75, 78, 78
  at 1e-3; 76, 83, 89 at 1e-2).
- The label masks are at a fixed evaluation resolution (E x E, default 224), not the
  image's original size.
- Pixels outside the ultrasound scan (the scan mask) are ignored in the loss and in every score;
  the loss of a minibatch is the mean over its pixels inside the scan, as torch's
  `cross_entropy(..., ignore_index=...)` averages (a batch without one gives no gradient).

A fit trains every (training subset, seed) pair at once (`dense_training`), on tokens and labels
checked and placed on the device by `dense_data`, and returns each problem's head as numpy arrays
(`LinearSegmentationHead`, the standardisation folded in, so it applies to raw tokens);
`predict_masks` and `score_masks` (`dense_heads`) apply heads to any tokens, e.g. those of
corrupted test images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge

from ultrabench_eval.core.device import AUTO, resolve_device
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.dense_data import (
    Split,
    check_alike,
    check_grid,
    check_subsets,
    checked_split,
)
from ultrabench_eval.probes.dense_heads import (
    HeadStack,
    LinearSegmentationHead,
    predict_masks,
    score_masks,
    split_counts,
)
from ultrabench_eval.probes.dense_training import BatchedRun
from ultrabench_eval.probes.options import FORBID_UNKNOWN, DeviceOption, Positive, parse_options
from ultrabench_eval.probes.segmentation_metrics import segmentation_scores

__all__ = [
    "DenseOptions",
    "DenseProbe",
    "LinearSegmentationHead",
    "SegmentationProbeResult",
    "predict_masks",
    "score_masks",
]

Count = Annotated[int, Ge(1)]


@dataclass(frozen=True)
class DenseOptions:
    """The options of the `dense` probe (see the module docstring)."""

    __pydantic_config__ = FORBID_UNKNOWN

    lr: Positive = 1e-2  # DINOv2's 1e-3 is for 40k iterations (see the module docstring)
    weight_decay: Annotated[float, Ge(0)] = 1e-4
    epochs: Count = 30
    batch_size: Count = 16  # images per minibatch
    schedule: Literal["poly", "constant"] = "poly"  # poly: lr * (1 - epoch / epochs)
    standardize: bool = True  # z-score the tokens with the training subset's statistics
    device: DeviceOption = AUTO


@dataclass
class SegmentationProbeResult:
    """One problem's fit: per-image confusion counts on validation and test, their scores
    (x100), the head, and diagnostics. Test predictions are not stored: `predict_masks` makes
    them from the head."""

    test_counts: np.ndarray  # int64 [N_test, K, 3]: tp, fp, fn per image and class
    val_counts: np.ndarray  # int64 [N_val, K, 3]
    test_dice: float  # mean foreground Dice, x100
    val_dice: float
    test_miou: float  # mean IoU over all classes, x100
    val_miou: float
    test_dice_per_class: list[float]  # classes 1..K-1, x100 (NaN: absent from truth and pred)
    head: LinearSegmentationHead
    params: dict[str, Any]  # options, chosen epoch, validation Dice per epoch...; JSON-safe
    seconds: float = 0.0


class DenseProbe:
    """A linear 1x1 head on standardised frozen patch tokens, trained with AdamW on the
    scan-masked pixel cross-entropy of bilinearly upsampled logits; epoch chosen on validation
    mean Dice; all subsets and seeds at once.

    Options (`DenseOptions`): `lr`, `weight_decay`, `epochs`, `batch_size`, `schedule`
    ("poly" or "constant"), `standardize`, `device`.
    """

    name = "dense"
    uses_seed = True

    def __init__(self, device: str | None = AUTO, **options: Any) -> None:
        self.options = parse_options(DenseOptions, {**options, "device": device})
        self.device = resolve_device(self.options.device)
        self.heads: list[LinearSegmentationHead] = []  # of the last fit, in problem order
        self.size: tuple[int, int] | None = None  # the masks' resolution of the last fit

    def fit_predict_subsets(
        self,
        train_tokens: np.ndarray,
        train_masks: np.ndarray,
        train_valid: np.ndarray,
        subsets: Sequence[np.ndarray],
        val_tokens: np.ndarray,
        val_masks: np.ndarray,
        val_valid: np.ndarray,
        test_tokens: np.ndarray,
        test_masks: np.ndarray,
        test_valid: np.ndarray,
        *,
        grid: tuple[int, int],
        n_classes: int,
        seeds: Sequence[int],
    ) -> list[SegmentationProbeResult]:
        """One head per training subset (indices into the training images) and seed.

        Tokens [N, T, D] (T = h * w of `grid`, row-major), masks [N, H, W] of class indices in
        [0, n_classes) with 0 the background, valid [N, H, W] (nonzero inside the scan). The
        test masks only score the final heads.
        """
        started = time.perf_counter()
        grid = check_grid(grid)
        if not 2 <= n_classes <= 256:
            raise UserError(
                f"dense probe: n_classes is {n_classes}; it takes 2 to 256 (masks are uint8)"
            )
        splits = {}
        for name, tokens, masks, valid in (
            ("train", train_tokens, train_masks, train_valid),
            ("validation", val_tokens, val_masks, val_valid),
            ("test", test_tokens, test_masks, test_valid),
        ):
            splits[name] = checked_split(name, tokens, masks, valid, grid, n_classes)
        check_alike(splits)
        subsets = check_subsets(subsets, seeds, len(train_tokens))

        device = self.device
        train = Split(*splits["train"], device)
        val = Split(*splits["validation"], device)
        run = BatchedRun(self.options, train, val, subsets, list(seeds), n_classes, grid)
        run.train()
        heads = run.best_heads()
        test = Split(*splits["test"], device)
        stack = HeadStack.of(heads, device)
        val_counts = split_counts(stack, val, grid).cpu().numpy()
        test_counts = split_counts(stack, test, grid).cpu().numpy()
        self.heads, self.size = heads, train.size
        seconds = (time.perf_counter() - started) / len(subsets)

        results = []
        for p, head in enumerate(heads):
            val_scores = segmentation_scores(val_counts[p])
            test_scores = segmentation_scores(test_counts[p])
            results.append(
                SegmentationProbeResult(
                    test_counts=test_counts[p],
                    val_counts=val_counts[p],
                    test_dice=test_scores.dice,
                    val_dice=val_scores.dice,
                    test_miou=test_scores.miou,
                    val_miou=val_scores.miou,
                    test_dice_per_class=[float(v) for v in test_scores.dice_per_class],
                    head=head,
                    params={
                        **{k: v for k, v in asdict(self.options).items() if k != "device"},
                        "best_epoch": int(run.best_epoch[p]),
                        "val_dice_per_epoch": [_json_float(v) for v in run.history[p]],
                        "train_size": len(subsets[p]),
                        "grid": list(grid),
                        "eval_size": list(train.size),
                        "device": str(device),
                    },
                    seconds=seconds,
                )
            )
        return results

    def predict_masks(
        self, result_index: int, tokens: np.ndarray, grid: tuple[int, int]
    ) -> np.ndarray:
        """The masks the fitted head `result_index` predicts for `tokens` [N, T, D]: uint8
        [N, H, W] at the fit's mask resolution."""
        return predict_masks(
            self._head(result_index), tokens, grid, self._size(), device=self.device
        )

    def score(
        self,
        result_index: int | None,
        tokens: np.ndarray,
        masks: np.ndarray,
        valid: np.ndarray,
        grid: tuple[int, int],
    ) -> np.ndarray:
        """Confusion counts of fitted head `result_index` on new tokens (e.g. of corrupted test
        images): int64 [N, K, 3]; `None`: every head of the fit at once, [P, N, K, 3]."""
        heads = self.heads if result_index is None else self._head(result_index)
        if result_index is None and not heads:
            raise UserError("dense probe: nothing fitted yet (call fit_predict_subsets first)")
        return score_masks(heads, tokens, masks, valid, grid, device=self.device)

    def _head(self, index: int) -> LinearSegmentationHead:
        if not self.heads:
            raise UserError("dense probe: nothing fitted yet (call fit_predict_subsets first)")
        if not -len(self.heads) <= index < len(self.heads):
            raise UserError(
                f"dense probe: no result {index}; the last fit has {len(self.heads)} (0 to "
                f"{len(self.heads) - 1})"
            )
        return self.heads[index]

    def _size(self) -> tuple[int, int]:
        assert self.size is not None  # set with the heads
        return self.size


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)
