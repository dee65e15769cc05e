"""Scan geometry from the mask: the apex of a convex sector, straight beams of a linear probe."""

import math

import pytest
import torch
from corruption_batches import linear_mask, sector_mask

from ultrabench_eval.corruptions.geometry import beam_coordinates


@pytest.mark.parametrize("apex_y", [-0.3, -0.1, 0.0])
def test_convex_sector_apex_is_found(apex_y):
    size = 96
    mask = sector_mask(size, apex_y=apex_y)[None, None]
    beams = beam_coordinates(mask)
    assert beams.convex.tolist() == [True]
    x, y = beams.apex[0].tolist()
    assert x == pytest.approx((size - 1) / 2, abs=0.5)
    assert y == pytest.approx(apex_y * size, abs=2.5)


def test_convex_coordinates_follow_the_fan():
    size = 96
    mask = sector_mask(size)[None, None]
    beams = beam_coordinates(mask)
    inside = mask[0, 0]
    lateral, depth = beams.lateral[0, 0][inside], beams.depth[0, 0][inside]
    assert lateral.min() == pytest.approx(0.0, abs=0.05) and lateral.max() == pytest.approx(
        1.0, abs=0.05
    )
    assert depth.min() == pytest.approx(0.0, abs=1e-6) and depth.max() == pytest.approx(
        1.0, abs=1e-6
    )
    # along one beam (a ray from the apex) lateral stays put and depth grows
    ax, ay = beams.apex[0].tolist()
    angle = math.radians(20)
    points = [
        (round(ax + r * math.sin(angle)), round(ay + r * math.cos(angle))) for r in (50, 70, 90)
    ]
    lat = [beams.lateral[0, 0, y, x].item() for x, y in points]
    dep = [beams.depth[0, 0, y, x].item() for x, y in points]
    assert max(lat) - min(lat) < 0.03
    assert dep[0] < dep[1] < dep[2]


def test_linear_probe_has_vertical_beams():
    size = 64
    mask = linear_mask(size)[None, None]
    beams = beam_coordinates(mask)
    assert beams.convex.tolist() == [False] and torch.isnan(beams.apex).all()
    rows, cols = torch.nonzero(mask[0, 0], as_tuple=True)
    lateral, depth = beams.lateral[0, 0], beams.depth[0, 0]
    # lateral depends on the column only, depth on the row only, both spanning [0, 1]
    assert torch.allclose(lateral[rows.min()], lateral[rows.max()])
    assert torch.allclose(depth[:, cols.min()], depth[:, cols.max()])
    assert lateral[rows.min(), cols.min()] == 0 and lateral[rows.min(), cols.max()] == 1
    assert depth[rows.min(), cols.min()] == 0 and depth[rows.max(), cols.min()] == 1


def test_a_full_frame_or_empty_mask_gives_finite_linear_coordinates():
    masks = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    masks[0] = True
    beams = beam_coordinates(masks)
    assert beams.convex.tolist() == [False, False]
    assert torch.isfinite(beams.lateral).all() and torch.isfinite(beams.depth).all()
    assert beams.lateral[0, 0, 0, -1] == 1 and beams.depth[0, 0, -1, 0] == 1


def test_each_image_gets_its_own_geometry_whatever_the_batch():
    masks = torch.stack([sector_mask(64), linear_mask(64), sector_mask(64, apex_y=-0.1)])[:, None]
    whole = beam_coordinates(masks)
    for i in range(3):
        alone = beam_coordinates(masks[i : i + 1])
        assert torch.equal(alone.lateral[0], whole.lateral[i])
        assert torch.equal(alone.depth[0], whole.depth[i])
    assert whole.convex.tolist() == [True, False, True]
