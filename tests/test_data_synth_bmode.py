"""Physics of the generated B-mode images: speckle statistics, shadows, enhancement, geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ultrabench_eval.data.synth import bmode
from ultrabench_eval.data.synth.bmode import CONVEX, LINEAR, Medium, Probe, Scanner

SIZE = 128
LINEAR_PROBE = Probe(LINEAR, width=0.8, margin=0.03)
CONVEX_PROBE = Probe(CONVEX, half_angle_deg=30.0, radius=0.25, margin=0.03)
TISSUE_LOSS = 40.0  # dB per image width
# TGC matching the tissue loss, noise far below the tissue echo
SCANNER = Scanner(tgc_db=TISSUE_LOSS, noise_db=-90.0, gain_db=0.0, dynamic_range_db=55.0)


def _tissue(grid: bmode.Grid):
    return np.ones(grid.shape), np.full(grid.shape, TISSUE_LOSS)


def _with_disc(grid, cx, cy, radius, echo_level, loss):
    echo, attenuation = _tissue(grid)
    disc = np.hypot(grid.x - cx, grid.y - cy) < radius
    echo[disc] = echo_level
    attenuation[disc] = loss
    return Medium(echo, attenuation, density=20.0)


def _box(image: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> float:
    """Mean brightness over an image-coordinate box (image widths)."""
    s = image.shape[0]
    return float(image[int(y0 * s) : int(y1 * s), int(x0 * s) : int(x1 * s)].mean())


def _render(medium, probe, seed=0, scanner=SCANNER):
    grid = bmode.prescan_grid(probe, SIZE)
    return bmode.render(medium, grid, scanner, np.random.default_rng(seed), SIZE)


def _envelope(density: float, seed: int = 0) -> np.ndarray:
    grid = bmode.prescan_grid(LINEAR_PROBE, SIZE)
    medium = Medium(np.ones(grid.shape), attenuation=0.0, density=density)
    scanner = Scanner(tgc_db=0.0, noise_db=-150.0)
    envelope = bmode.echo_envelope(medium, grid, scanner, np.random.default_rng(seed))
    return envelope[20:-20, 8:-8]  # away from the edges of the grid


def test_fully_developed_speckle_is_rayleigh():
    env = _envelope(density=30.0)
    # Rayleigh envelope: mean / std = sqrt(pi / (4 - pi)) = 1.91
    assert 1.75 < env.mean() / env.std() < 2.1
    # unit-echogenicity tissue has unit RMS envelope
    assert 0.85 < math.sqrt(np.mean(env**2)) < 1.15


def test_sparse_scatterers_give_non_rayleigh_speckle_at_the_same_brightness():
    sparse, dense = _envelope(density=0.5), _envelope(density=30.0)
    assert sparse.mean() / sparse.std() < 1.5
    # the density changes the statistics, not the mean backscattered power
    ratio = np.mean(sparse**2) / np.mean(dense**2)
    assert 0.6 < ratio < 1.6


def test_cyst_is_dark_with_posterior_enhancement():
    grid = bmode.prescan_grid(LINEAR_PROBE, SIZE)
    cyst = _with_disc(grid, 0.5, 0.35, 0.1, echo_level=1e-5, loss=0.5)
    image, _ = _render(cyst, LINEAR_PROBE)
    inside = _box(image, 0.46, 0.54, 0.31, 0.39)
    beside = _box(image, 0.15, 0.3, 0.3, 0.4)
    assert inside < 0.3 * beside
    # fluid hardly attenuates while TGC assumes tissue: brighter behind the cyst
    behind = _box(image, 0.45, 0.55, 0.55, 0.9)
    beside_deep = (_box(image, 0.15, 0.3, 0.55, 0.9) + _box(image, 0.7, 0.85, 0.55, 0.9)) / 2
    assert behind > beside_deep + 15


def test_attenuating_lesion_casts_a_shadow():
    grid = bmode.prescan_grid(LINEAR_PROBE, SIZE)
    solid = _with_disc(grid, 0.5, 0.35, 0.08, echo_level=0.3, loss=300.0)
    image, _ = _render(solid, LINEAR_PROBE)
    behind = _box(image, 0.46, 0.54, 0.55, 0.9)
    beside = (_box(image, 0.15, 0.3, 0.55, 0.9) + _box(image, 0.7, 0.85, 0.55, 0.9)) / 2
    assert behind < beside - 20


def test_convex_shadow_follows_the_beam_not_the_vertical():
    probe = CONVEX_PROBE
    theta = math.radians(20.0)
    r_lesion, r_far = probe.radius + 0.2, probe.radius + 0.55
    cx, cy = 0.5 + r_lesion * math.sin(theta), probe.apex_y + r_lesion * math.cos(theta)
    grid = bmode.prescan_grid(probe, SIZE)
    image, mask = _render(_with_disc(grid, cx, cy, 0.04, 0.3, 400.0), probe)
    x_ray, y_ray = 0.5 + r_far * math.sin(theta), probe.apex_y + r_far * math.cos(theta)
    d = 0.03
    along_ray = _box(image, x_ray - d, x_ray + d, y_ray - d, y_ray + d)
    straight_below = _box(image, cx - d, cx + d, y_ray - d, y_ray + d)
    mirrored = _box(image, 1 - x_ray - d, 1 - x_ray + d, y_ray - d, y_ray + d)
    assert mask[int(y_ray * SIZE), int(x_ray * SIZE)]
    assert along_ray < straight_below - 20
    assert along_ray < mirrored - 20


@pytest.mark.parametrize("probe", [LINEAR_PROBE, CONVEX_PROBE], ids=["linear", "convex"])
def test_outside_the_field_of_view_is_black(probe):
    grid = bmode.prescan_grid(probe, SIZE)
    echo, attenuation = _tissue(grid)
    image, mask = _render(Medium(echo, attenuation), probe, scanner=Scanner(gain_db=20.0))
    assert image.dtype == np.uint8 and mask.dtype == bool
    assert image.shape == mask.shape == (SIZE, SIZE)
    assert np.all(image[~mask] == 0)
    assert image[mask].mean() > 50  # and the field of view is not


def test_linear_field_of_view_is_a_rectangle():
    _, mask = bmode.scan_convert(np.ones((100, 80)), LINEAR_PROBE, SIZE)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    assert box.all() and mask.sum() == box.size
    assert abs(box.shape[1] / SIZE - LINEAR_PROBE.width) < 2 / SIZE


def test_convex_field_of_view_is_a_fan():
    _, mask = bmode.scan_convert(np.ones((100, 80)), CONVEX_PROBE, SIZE)
    rows = np.flatnonzero(mask.any(axis=1))
    widths = mask[rows].sum(axis=1)
    left = np.array([np.flatnonzero(row)[0] for row in mask[rows]])
    top, deep = slice(0, 5), slice(int(0.6 * len(rows)), int(0.6 * len(rows)) + 5)
    assert widths[deep].mean() > 2 * widths[top].mean()  # wider at depth
    assert np.all(np.diff(left[: int(0.6 * len(rows))]) <= 0)  # straight edges opening out
    assert np.array_equal(mask, mask[:, ::-1])  # symmetric about the centre line
    # the top is an arc about the apex, concentric with the bottom: it dips in the middle
    centre_top = np.flatnonzero(mask[:, SIZE // 2])[0]
    corner_top = np.flatnonzero(mask[:, left[0] + 1])[0]
    assert centre_top > corner_top + 2


def test_positions_and_fractions_invert_each_other():
    for probe in (LINEAR_PROBE, CONVEX_PROBE):
        axial, lateral = np.meshgrid(np.linspace(0, 1, 7), np.linspace(0, 1, 5))
        x, y, bx, by = probe.positions(axial, lateral)
        back_axial, back_lateral = probe.fractions(x, y)
        np.testing.assert_allclose(back_axial, axial, atol=1e-9)
        np.testing.assert_allclose(back_lateral, lateral, atol=1e-9)
        np.testing.assert_allclose(np.hypot(bx, by), 1.0)


def test_random_probes_fit_the_image():
    rng = np.random.default_rng(3)
    for _ in range(200):
        probe = bmode.random_probe(rng)
        x, y, _, _ = probe.positions(np.array([0.0, 1.0])[:, None], np.array([0.0, 0.5, 1.0]))
        assert np.all((x >= 0) & (x <= 1) & (y >= 0) & (y <= 1))
        assert probe.depth > 0.5


def test_same_generator_state_same_image():
    grid = bmode.prescan_grid(CONVEX_PROBE, 64)
    medium = Medium(*_tissue(grid))
    a, _ = bmode.render(medium, grid, SCANNER, np.random.default_rng(5), 64)
    b, _ = bmode.render(medium, grid, SCANNER, np.random.default_rng(5), 64)
    c, _ = bmode.render(medium, grid, SCANNER, np.random.default_rng(6), 64)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
