"""Scan masks: which pixels lie inside the ultrasound field of view.

`derive_scan_mask` gives exactly the mask of the reference recipe (`reference_scan_mask`: scipy
opening and labelling, then skimage's `convex_hull_image`) six to ten times faster, since it
dominated a store build's time: the opening and labelling run in OpenCV, and the hull is found
from each row's end pixels and filled row by row in exact integer arithmetic, where skimage
tests every pixel against the polygon. Both fill the closed hull (inside, edges and vertices)
of the pixels' edge midpoints; those lie on the half-pixel grid, where skimage's float test is
exact, so the two agree bit for bit (tests compare them on many shapes).
"""

from __future__ import annotations

import cv2
import numpy as np

# scipy.ndimage and skimage (rare ties and fallbacks, the reference) are imported where used:
# together they take most of a second to import, in every store-building worker process.

# JPEG noise and faint text make "> 0" too loose a test for the field of view.
DEFAULT_THRESHOLD = 8
_SQUARE = np.ones((3, 3), dtype=np.uint8)
_BORDER = {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}
# After a 3x3 opening every component holds a full 3x3 square (9 pixels), so an image of up
# to this many pixels has at most 65,535 labels: 16-bit labels and a fast histogram suffice.
_SMALL_IMAGE = 9 * 65_535


def derive_scan_mask(image: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """Threshold, keep the largest connected component, fill it with its convex hull.

    The field of view of a convex or linear probe is convex, and dark tissue inside it (cysts,
    shadows) is restored by the hull. An image with nothing above the threshold gets a full mask,
    so corruptions and statistics still have somewhere to act.
    """
    if image.ndim != 2:
        raise ValueError("derive_scan_mask expects a 2-D grayscale image")
    bright = np.ascontiguousarray(image > threshold).view(np.uint8)
    # Opening detaches thin overlays (calipers, text) from the scan region; pixels beyond the
    # border count as dark, as in scipy's binary_opening.
    opened = cv2.dilate(cv2.erode(bright, _SQUARE, **_BORDER), _SQUARE, **_BORDER)
    largest = _largest_component(opened)
    if largest is None:
        return np.ones(image.shape, dtype=bool)
    return convex_hull_mask(largest)


def _largest_component(binary: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of a 0/1 uint8 image (None when it has none); of
    equal ones, the one scipy's `ndimage.label` numbers first."""
    small = binary.size <= _SMALL_IMAGE
    count, labels = cv2.connectedComponents(
        binary, connectivity=4, ltype=cv2.CV_16U if small else cv2.CV_32S
    )
    if count <= 1:
        return None
    if small:  # exact counts: fewer than 2**24 pixels
        sizes = cv2.calcHist([labels], [0], None, [count], [0, count]).ravel()
    else:
        sizes = np.bincount(labels.ravel(), minlength=count)
    sizes[0] = 0
    top = sizes.max()
    if np.count_nonzero(sizes == top) > 1:
        # a tie: scipy's numbering (raster order of first pixels) says which one is "largest"
        from scipy import ndimage

        labels, _ = ndimage.label(binary)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
    return labels == int(np.argmax(sizes))


def reference_scan_mask(image: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> np.ndarray:
    """The recipe `derive_scan_mask` reproduces, in scipy and skimage (slow; for tests)."""
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    bright = ndimage.binary_opening(image > threshold, structure=np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(bright)
    if count == 0:
        return np.ones(image.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return convex_hull_image(labels == int(np.argmax(sizes)))


def convex_hull_mask(region: np.ndarray) -> np.ndarray:
    """skimage's `convex_hull_image(region)` (offset coordinates, borders included) of a 2-D
    boolean region with at least one pixel, without its per-pixel polygon test."""
    rows, cols = _row_end_points(region)
    points = np.stack([rows, cols], axis=1).astype(np.int32)
    hull = cv2.convexHull(points, clockwise=False).reshape(-1, 2).astype(np.int64)
    step = np.concatenate((hull[1:], hull[:1])) - hull
    # Column bounds for each doubled row -1 .. 2H + 1 (at index row + 1).
    low, high = _row_bounds(hull, step, np.arange(-1, 2 * region.shape[0] + 2, dtype=np.int64))
    # OpenCV's hull is checked, not trusted: a convex polygon of input points that holds all
    # of them is their hull.
    if not (_convex(step) and np.all(low[rows + 1] <= cols) and np.all(cols <= high[rows + 1])):
        from skimage.morphology import convex_hull_image

        return convex_hull_image(region)
    even = slice(1, 2 * region.shape[0], 2)  # the pixel rows, 2r = 0 .. 2H - 2
    cols2 = 2 * np.arange(region.shape[1], dtype=np.int64)
    return (cols2 >= low[even, np.newaxis]) & (cols2 <= high[even, np.newaxis])


# The edge midpoints kept per row, as offsets in doubled coordinates: the top, bottom and left
# ones of the row's first pixel, the top, bottom and right ones of its last.
_END_ROWS = np.array([-1, 1, 0, -1, 1, 0])[:, np.newaxis]
_END_COLS = np.array([0, 0, -1, 0, 0, 1])[:, np.newaxis]
_FIRST = (np.arange(6) < 3)[:, np.newaxis]


def _row_end_points(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Doubled (2r, 2c) coordinates, as rows and columns, whose hull is that of the edge
    midpoints of all the region's pixels: every pixel lies between its row's first and last,
    whose outer midpoints suffice."""
    rows = np.flatnonzero(region.any(axis=1))
    sub = region[rows]
    first = sub.argmax(axis=1)
    last = region.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    ends = np.where(_FIRST, first, last)
    return (2 * rows + _END_ROWS).ravel(), (2 * ends + _END_COLS).ravel()


def _convex(step: np.ndarray) -> bool:
    """Whether the closed loop of edge vectors `step` turns left or goes straight at every
    vertex, and left somewhere (a convex polygon, counter-clockwise in (r, c))."""
    after = np.concatenate((step[1:], step[:1]))
    turn = step[:, 0] * after[:, 1] - step[:, 1] * after[:, 0]
    return len(step) >= 3 and bool(np.all(turn >= 0) and np.any(turn > 0))


def _row_bounds(
    start: np.ndarray, step: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each row R, the columns C with (R, C) inside or on the counter-clockwise convex
    polygon with vertices `start` and edges `step`: low <= C <= high (none if low > high),
    exactly, in integers."""
    dr, dc = step.T
    # (R, C) is on an edge's inner side iff dr (C - sc) - dc (R - sr) >= 0, i.e. dr C >= k.
    k = dr * start[:, 1] + dc * (rows[:, np.newaxis] - start[:, 0])
    up, down, flat = dr > 0, dr < 0, dr == 0
    unbounded = np.int64(1 << 40)
    low = (-(-k[:, up] // dr[up])).max(axis=1, initial=-unbounded)  # C >= ceil(k / dr)
    high = (k[:, down] // dr[down]).min(axis=1, initial=unbounded)  # C <= floor(k / dr)
    high[(k[:, flat] > 0).any(axis=1)] = -unbounded  # beyond a flat edge: no column
    return low, high
