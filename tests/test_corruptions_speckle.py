"""Speckle: Gamma intensity of L looks, correlated over the PSF; the US-JEPA correlated speckle."""

import math

import pytest
import torch
from corruption_batches import as_float, batch

from ultrabench_eval.corruptions.speckle import Speckle, UsJepaSpeckle, correlated_gamma


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(n)]


def _neighbour_correlation(field: torch.Tensor, dim: int) -> float:
    a = field - field.mean()
    b = torch.roll(a, 1, dims=dim)
    return float((a * b).mean() / (a * a).mean())


@pytest.mark.parametrize("looks", [1, 2, 12])
def test_intensity_is_gamma_with_mean_one_and_variance_one_over_looks(looks):
    field = correlated_gamma(_gens(4), (96, 96), looks, 1.0, 2.0, torch.device("cpu"))
    assert field.shape == (4, 1, 96, 96) and (field >= 0).all()
    assert float(field.mean()) == pytest.approx(1.0, abs=0.06)
    assert float(field.var()) == pytest.approx(1.0 / looks, rel=0.15)
    if looks == 1:  # exponential: P(I > 1) = 1/e
        assert float((field > 1).float().mean()) == pytest.approx(math.exp(-1), abs=0.03)


def test_speckle_is_correlated_over_the_psf_not_white():
    field = correlated_gamma(_gens(2), (128, 128), 1, 1.5, 3.0, torch.device("cpu"))
    across = _neighbour_correlation(field, 3)
    along = _neighbour_correlation(field, 2)
    assert across > along > 0.3  # wider across the beam than along it
    white = correlated_gamma(_gens(2), (128, 128), 1, 0.05, 0.05, torch.device("cpu"))
    assert abs(_neighbour_correlation(white, 3)) < 0.05


def test_fully_developed_speckle_has_rayleigh_contrast():
    """Severity 5 (one look): amplitude std / mean of a Rayleigh, sqrt(4 / pi - 1) = 0.52."""
    x = torch.full((4, 1, 128, 128), 0.4)
    masks = torch.ones_like(x, dtype=torch.bool)
    ratio = Speckle().apply(x, masks, 5, _gens(4)) / x
    assert float(ratio.mean()) == pytest.approx(1.0, abs=1e-4)  # normalised inside the mask
    assert float(ratio.std()) == pytest.approx(math.sqrt(4 / math.pi - 1), rel=0.08)


def test_us_jepa_speckle_has_the_stated_eta_and_a_growing_correlation():
    x = torch.full((4, 1, 224, 224), 0.3)
    masks = torch.ones_like(x, dtype=torch.bool)
    correlations = []
    for severity in (1, 2, 3):
        out = UsJepaSpeckle().apply(x, masks, severity, _gens(4))
        factor = out / x  # 1 + eta, clipped at 0
        unclipped = factor[factor > 0] - 1
        if severity == 1:  # hardly anything clips at 0.35
            assert float(unclipped.std()) == pytest.approx(0.35, rel=0.05)
        assert (factor >= 0).all()
        correlations.append(_neighbour_correlation(factor, 3))
    assert correlations[0] < correlations[1] < correlations[2]


def test_speckle_follows_the_sector_and_leaves_the_outside_to_the_view():
    images, masks, _ = batch(2, size=96)
    out = Speckle().apply(as_float(images), masks.bool(), 3, _gens(2))
    assert torch.isfinite(out).all()
    assert not torch.equal(out[masks.bool()], as_float(images)[masks.bool()])
