"""Acoustic shadows along the beam, and usaugment's Gaussian shadow reproduced in torch."""

import math

import numpy as np
import pytest
import torch
from corruption_batches import linear_mask, sector_mask
from usaugment.albumentations import GaussianShadow as UsaugmentShadow

from ultrabench_eval.corruptions.geometry import beam_coordinates
from ultrabench_eval.corruptions.shadows import (
    AcousticShadow,
    GaussianShadow,
    gaussian_shadow_map,
    pixel_in_mask,
)


def _gens(n, seed=0):
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(n)]


def test_gaussian_shadow_map_is_usaugments():
    """Deterministic given its parameters: the same shadow image as usaugment's for the centre,
    sigmas and strength its random draws picked."""
    h, w = 48, 64
    shadow = UsaugmentShadow(strength=0.6, sigma_x=0.1, sigma_y=0.15, p=1.0)
    np.random.seed(7)
    theirs = shadow._generate_shadow_image(h, w, np.ones((h, w)))
    np.random.seed(7)
    mu_x, mu_y = np.random.choice(np.arange(w)), np.random.choice(np.arange(h))
    ours = gaussian_shadow_map(
        h,
        w,
        torch.tensor([float(mu_x)]),
        torch.tensor([float(mu_y)]),
        torch.tensor([0.1]),
        torch.tensor([0.15]),
        torch.tensor([0.6]),
    )[0, 0]
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6)


def test_gaussian_shadow_centres_inside_the_mask():
    masks = torch.stack([sector_mask(64), linear_mask(64)])[:, None]
    for seed in range(20):
        u = torch.rand(2, generator=torch.Generator().manual_seed(seed))
        x, y = pixel_in_mask(masks, u)
        for i in range(2):
            assert masks[i, 0, int(y[i]), int(x[i])]
    # u near 1 picks the last mask pixel, not one beyond it
    x, y = pixel_in_mask(masks, torch.tensor([0.9999999, 0.0]))
    assert masks[0, 0, int(y[0]), int(x[0])]


def test_gaussian_shadow_darkens_by_its_strength_at_most():
    x = torch.full((6, 1, 64, 64), 0.5)
    masks = torch.stack([sector_mask(64)] * 6)[:, None]
    out = GaussianShadow().apply(x, masks, 5, _gens(6))
    ratio = out / x
    assert float(ratio.min()) >= 1 - GaussianShadow().parameter(5) - 1e-6
    assert float(ratio.max()) <= 1 + 1e-6


def test_shadow_runs_along_the_beam_from_its_start_to_the_bottom():
    size = 128
    masks = sector_mask(size)[None, None]
    x = torch.full((1, 1, size, size), 0.5)
    out = AcousticShadow().apply(x, masks, 2, _gens(1))  # one shadow
    strength = AcousticShadow().parameters(2)["strength"]
    dark = (out / x < 1 - 0.8 * strength) & masks
    beams = beam_coordinates(masks)
    lateral, depth = beams.lateral[dark], beams.depth[dark]
    assert dark.sum() > 50
    assert float(lateral.max() - lateral.min()) < 0.2  # a band across, not a blob
    start = float(depth.min())
    assert 0.1 < start < 0.7
    # every beam position inside the band is dark from the start down to the bottom
    ax, ay = beams.apex[0].tolist()
    angle_l, angle_r = -math.radians(35), math.radians(35)
    centre = float(lateral.mean())
    angle = angle_l + centre * (angle_r - angle_l)
    r_face = -ay + 0.06 * size
    r_end = -ay + 0.95 * size
    checked = 0
    for fraction in np.linspace(start + 0.05, 1.0, 12):
        r = r_face + fraction * (r_end - r_face)
        px, py = round(ax + r * math.sin(angle)), round(ay + r * math.cos(angle))
        if 0 <= px < size and 0 <= py < size and masks[0, 0, py, px]:
            assert dark[0, 0, py, px], fraction
            checked += 1
    assert checked >= 6


def test_shadow_is_vertical_on_a_linear_probe():
    masks = linear_mask(96)[None, None]
    x = torch.full((1, 1, 96, 96), 0.5)
    out = AcousticShadow().apply(x, masks, 1, _gens(1, seed=3))
    strength = AcousticShadow().parameters(1)["strength"]
    dark = ((out / x < 1 - 0.8 * strength) & masks)[0, 0]
    columns = dark.any(dim=0).nonzero()[:, 0]
    rows = dark.any(dim=1).nonzero()[:, 0]
    assert len(columns) < 20
    assert rows.max() == linear_mask(96).nonzero()[:, 0].max()  # reaches the bottom
    assert torch.equal(dark[rows.max(), columns], dark[rows.max() - 5, columns])


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_shadow_count_follows_the_table(severity):
    masks = linear_mask(160)[None, None]
    x = torch.full((1, 1, 160, 160), 0.5)
    out = AcousticShadow().apply(x, masks, severity, _gens(1, seed=11))
    bottom = (out / x)[0, 0, 150]
    assert bottom.min() <= 1 - 0.9 * AcousticShadow().parameters(severity)["strength"]
