"""Intensity corruptions: Gaussian noise (against albumentations), contrast depletion, gain."""

import albumentations as A
import numpy as np
import pytest
import torch
from corruption_batches import as_float, batch

from ultrabench_eval.corruptions.intensity import (
    ContrastDepletion,
    Gain,
    GaussianNoise,
    UsJepaContrast,
)


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(n)]


def test_gaussian_noise_matches_albumentations_statistics():
    """Random transform: the change has the same mean and variance as albumentations' GaussNoise
    at the same standard deviation (mid-grey image, so nothing clips)."""
    x = torch.full((8, 1, 64, 64), 0.5)
    full = torch.ones_like(x, dtype=torch.bool)
    sigma = GaussianNoise().parameter(3)
    ours = (GaussianNoise().apply(x, full, 3, _gens(8)) - x).numpy().ravel()
    noise = A.GaussNoise(std_range=(sigma, sigma), mean_range=(0, 0), p=1.0)
    theirs = np.concatenate(
        [(noise(image=x[i, 0].numpy())["image"] - 0.5).ravel() for i in range(8)]
    )
    assert ours.mean() == pytest.approx(theirs.mean(), abs=0.003)
    assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
    assert ours.std() == pytest.approx(sigma, rel=0.03)


def test_contrast_depletion_pulls_towards_the_in_mask_median():
    images, masks, _ = batch(2)
    x, inside = as_float(images), masks.bool()
    for corruption, alphas in (
        (ContrastDepletion(), (0.8, 0.65, 0.5, 0.35, 0.2)),
        (UsJepaContrast(), (0.7, 0.5, 0.3)),
    ):
        assert corruption.levels == alphas
        for severity, alpha in enumerate(alphas, start=1):
            out = corruption.apply(x, inside, severity, _gens(2))
            for i in range(2):
                median = x[i][inside[i]].median()
                expected = median + alpha * (x[i] - median)
                torch.testing.assert_close(out[i], expected)


def test_gain_shifts_up_or_down_by_the_table_and_keeps_the_sign_across_severities():
    x = torch.full((16, 1, 8, 8), 0.5)
    full = torch.ones_like(x, dtype=torch.bool)
    signs = []
    for severity in (1, 5):
        shift = (Gain().apply(x, full, severity, _gens(16)) - x)[:, 0, 0, 0]
        assert torch.allclose(shift.abs(), torch.tensor(Gain().parameter(severity)))
        signs.append(torch.sign(shift))
    assert torch.equal(signs[0], signs[1])
    assert (signs[0] > 0).any() and (signs[0] < 0).any()
