import numpy as np
from skimage.morphology import convex_hull_image

from ultrabench_eval.data.scan_mask import convex_hull_mask, derive_scan_mask, reference_scan_mask


def _sector(h=120, w=120):
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy + 20, xx - w / 2)
    angle = np.degrees(np.arctan2(xx - w / 2, yy + 20))
    return (r > 25) & (r < h + 10) & (np.abs(angle) < 35)


def test_sector_with_dark_cyst_and_overlay_text():
    rng = np.random.default_rng(0)
    fov = _sector()
    image = np.where(fov, rng.integers(30, 200, fov.shape), 0).astype(np.uint8)
    yy, xx = np.mgrid[0:120, 0:120]
    cyst = np.hypot(yy - 70, xx - 60) < 12
    image[cyst] = 0  # anechoic: black inside the field of view
    image[2:5, 2:20] = 255  # annotation text in the corner, outside the field of view
    mask = derive_scan_mask(image)
    assert mask[cyst].all(), "the convex hull must restore dark tissue inside the sector"
    assert not mask[2:5, 2:20].any(), "overlay text is not part of the scan"
    iou = (mask & fov).sum() / (mask | fov).sum()
    assert iou > 0.93


def test_blank_image_gets_a_full_mask():
    assert derive_scan_mask(np.zeros((16, 16), np.uint8)).all()


def _random_image(rng, h, w):
    """Noise below and above the threshold, a bright blob or sector, text-like bars."""
    image = (rng.random((h, w)) * rng.uniform(4, 30)).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.7:
        blob = np.hypot((yy - rng.uniform(0, h)) / rng.uniform(0.3, 1.5), xx - rng.uniform(0, w))
        image[blob < rng.uniform(2, max(h, w))] = rng.integers(9, 255)
    for _ in range(rng.integers(0, 3)):
        r, c = rng.integers(0, h), rng.integers(0, w)
        image[r : r + rng.integers(1, 4), c : c + rng.integers(1, 12)] = 255
    return image


def test_derived_mask_equals_the_scipy_skimage_recipe():
    rng = np.random.default_rng(7)
    images = [_random_image(rng, *rng.integers(3, 70, 2)) for _ in range(150)]
    images.append(np.where(_sector(), 120, 0).astype(np.uint8))
    for image in images:
        np.testing.assert_array_equal(derive_scan_mask(image), reference_scan_mask(image))


def test_equal_components_are_broken_as_scipy_numbers_them():
    image = np.zeros((20, 30), np.uint8)
    image[12:17, 2:7] = 200  # lower left, first by column
    image[3:8, 20:25] = 200  # upper right, first in raster order
    mask = derive_scan_mask(image)
    np.testing.assert_array_equal(mask, reference_scan_mask(image))
    assert mask[5, 22] and not mask[14, 4]


def test_hull_fill_equals_skimage_on_random_regions():
    rng = np.random.default_rng(3)
    for _ in range(200):
        h, w = rng.integers(1, 50, 2)
        region = rng.random((h, w)) < rng.uniform(0.005, 0.2)
        region[rng.integers(0, h), rng.integers(0, w)] = True
        np.testing.assert_array_equal(convex_hull_mask(region), convex_hull_image(region))
