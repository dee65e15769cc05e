"""Scan masks: which pixels lie inside the ultrasound field of view."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

# JPEG noise and faint text make "> 0" too loose a test for the field of view.
DEFAULT_THRESHOLD = 8


def derive_scan_mask(image: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """Threshold, keep the largest connected component, fill it with its convex hull.

    The field of view of a convex or linear probe is convex, and dark tissue inside it (cysts,
    shadows) is restored by the hull. An image with nothing above the threshold gets a full mask,
    so corruptions and statistics still have somewhere to act.
    """
    if image.ndim != 2:
        raise ValueError("derive_scan_mask expects a 2-D grayscale image")
    bright = image > threshold
    # Opening detaches thin overlays (calipers, text) from the scan region.
    bright = ndimage.binary_opening(bright, structure=np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(bright)
    if count == 0:
        return np.ones(image.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    return convex_hull_image(largest)
