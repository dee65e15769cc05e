import numpy as np

from ultrabench_eval.data.scan_mask import derive_scan_mask


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
