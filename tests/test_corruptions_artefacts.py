"""Depth attenuation and haze against usaugment's, and reverberation bands."""

import itertools
import math

import numpy as np
import pytest
import torch
from corruption_batches import linear_mask
from usaugment.albumentations import DepthAttenuation, HazeArtifact

from ultrabench_eval.corruptions.artefacts import Attenuation, Haze, Reverberation
from ultrabench_eval.corruptions.base import frozen


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(n)]


def _apex_at_top(size=129, half_angle=40.0):
    """A fan from the top centre pixel down to the bottom row: the geometry usaugment assumes
    (its distance from the image's top centre is our depth along the beam)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2
    r = np.hypot(xx - centre, yy)
    fan = np.abs(np.degrees(np.arctan2(xx - centre, yy))) <= half_angle
    return (fan & (r <= size - 1)).astype(np.uint8)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_attenuation_equals_usaugments_depth_attenuation(severity):
    mask = _apex_at_top()
    rng = np.random.default_rng(0)
    image = (0.2 + 0.6 * rng.random(mask.shape)).astype(np.float32)
    rate = Attenuation().parameter(severity)
    theirs = DepthAttenuation(attenuation_rate=rate, max_attenuation=0.0, p=1.0)(
        image=image, scan_mask=mask
    )["image"]
    x = torch.from_numpy(image)[None, None]
    inside = torch.from_numpy(mask.astype(bool))[None, None]
    ours = Attenuation().apply(x, inside, severity, [])[0, 0].numpy()
    m = mask.astype(bool)
    assert np.abs(ours[m] - theirs[m]).max() < 0.02
    assert np.abs(ours[m] - theirs[m]).mean() < 0.003


def test_haze_matches_usaugments_mean_and_variance_of_the_change():
    """Random transform, with the band fixed at the same place: the same per-pixel mean and
    variance of the change (their texture is white, ours correlated, both uniform)."""
    mask = _apex_at_top()
    image = np.full(mask.shape, 0.2, dtype=np.float32)
    np.random.seed(0)
    haze = HazeArtifact(radius=0.4, sigma=0.1, p=1.0)
    theirs = np.stack([haze(image=image, scan_mask=mask)["image"] - image for _ in range(6)])
    fixed = Haze()
    fixed_table = dict(fixed.table)
    fixed_table.update(radius_min=(0.4,) * 5, radius_max=(0.4,) * 5, sigma=(0.1,) * 5)
    fixed.table = frozen(fixed_table)  # this instance only
    x = torch.from_numpy(image)[None, None].repeat(6, 1, 1, 1)
    inside = torch.from_numpy(mask.astype(bool))[None, None].repeat(6, 1, 1, 1)
    ours = (fixed.apply(x, inside, 5, _gens(6)) - x)[:, 0].numpy()  # amplitude 0.5, as theirs
    m = np.broadcast_to(mask.astype(bool), theirs.shape)
    assert ours[m].mean() == pytest.approx(theirs[m].mean(), rel=0.06)
    assert ours[m].var() == pytest.approx(theirs[m].var(), rel=0.1)
    # and per depth: the band sits at the same depth
    band_ours = np.nanmean(np.where(m, ours, np.nan), axis=(0, 2))
    band_theirs = np.nanmean(np.where(m, theirs, np.nan), axis=(0, 2))
    assert abs(int(np.nanargmax(band_ours)) - int(np.nanargmax(band_theirs))) <= 3


def test_reverberation_repeats_fading_bands_at_equal_steps():
    size = 160
    masks = linear_mask(size)[None, None]
    x = torch.full((1, 1, size, size), 0.2)
    out = Reverberation().apply(x, masks, 5, _gens(1, seed=2))
    added = (out - x)[0, 0]
    profile = added.max(dim=1).values  # brightest change per row
    rows = masks[0, 0].any(dim=1).nonzero()[:, 0]
    top, bottom = int(rows.min()), int(rows.max())
    peaks = [
        y
        for y in range(top + 1, bottom)
        if profile[y] > 0.02 and profile[y] >= profile[y - 1] and profile[y] > profile[y + 1]
    ]
    assert len(peaks) == Reverberation().parameters(5)["bands"]
    steps = np.diff([top, *peaks])
    assert steps.max() - steps.min() <= 1  # equal depth steps (up to rounding)
    heights = [float(profile[y]) for y in peaks]
    assert all(a > b for a, b in itertools.pairwise(heights))  # each fainter
    assert heights[0] == pytest.approx(Reverberation().parameters(5)["amplitude"], rel=0.1)
    assert math.isclose(float(added[~masks[0, 0].bool()].abs().max()), 0.0, abs_tol=1.0)
