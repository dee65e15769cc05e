"""The scan geometry of each image, estimated from its scan mask: where the beams run.

A convex or phased-array probe fans its beams out from an apex above the image; a linear probe
sends them straight down. From the mask we fit a straight line to its left and its right edge
(over the rows between the curved top and bottom arcs); edges that converge meet at the apex,
parallel ones mean a linear probe. Every pixel then gets beam coordinates: `lateral`, its place
across the field of view (0 at the left edge, 1 at the right), and `depth`, its distance from
the transducer face along its beam (0 at the face, 1 at the deepest point of the field of view).
A corruption that follows the beam (a shadow, attenuation, a reverberation band) is a function
of these. Everything is batched tensor arithmetic on the masks' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# rows used to fit the side edges, as fractions of the mask's height: below the transducer face
# (an arc on a convex probe) and above where the bottom arc starts cutting the sides
FIT_ROWS = (0.10, 0.60)
# edges whose slopes differ by less than this (about 3 degrees of opening) are parallel: linear
MIN_CONVERGENCE = 0.05


@dataclass(frozen=True)
class ScanGeometry:
    """The fitted field of view, per image ([B] each)."""

    convex: torch.Tensor  # bool: the beams fan out from an apex
    apex_x: torch.Tensor  # the apex in pixels (meaningful when convex)
    apex_y: torch.Tensor
    angle_left: torch.Tensor  # beam angle of the left and right edges, radians (convex)
    angle_right: torch.Tensor
    r_min: torch.Tensor  # distance from the apex of the nearest and farthest mask pixel
    r_max: torch.Tensor
    x0: torch.Tensor  # outermost mask columns (linear)
    x1: torch.Tensor
    top: torch.Tensor  # first and last mask rows
    bottom: torch.Tensor
    height: int
    width: int


@dataclass(frozen=True)
class BeamCoordinates:
    lateral: torch.Tensor  # float [B, 1, H, W]: 0 at the left edge of the field, 1 at the right
    depth: torch.Tensor  # float [B, 1, H, W]: 0 at the transducer face, 1 at the deepest point
    convex: torch.Tensor  # bool [B]: the beams fan out from an apex
    apex: torch.Tensor  # float [B, 2]: the apex (x, y) in pixels; NaN for a linear probe


def scan_geometry(masks: torch.Tensor) -> ScanGeometry:
    """Fit the field of view of bool scan masks [B, 1, H, W]. A few reductions read every pixel;
    the fits work on per-row and per-column extents."""
    m = masks[:, 0].to(torch.float32)
    _, h, w = m.shape
    device = m.device
    cols = torch.arange(w, device=device, dtype=torch.float32)
    rows = torch.arange(h, device=device, dtype=torch.float32)
    row_has = m.amax(dim=2) > 0
    left = w - (m * (w - cols)).amax(dim=2)  # leftmost mask column of each row
    right = (m * (cols + 1)).amax(dim=2) - 1
    col_has = m.amax(dim=1) > 0
    col_top = h - (m * (h - rows)[:, None]).amax(dim=1)  # topmost mask row of each column
    top = torch.where(row_has, rows, float(h)).amin(dim=1)
    bottom = torch.where(row_has, rows, -1.0).amax(dim=1)
    extent = (bottom - top).clamp_min(1.0)

    lo = (top + FIT_ROWS[0] * extent)[:, None]
    hi = (top + FIT_ROWS[1] * extent)[:, None]
    # rows whose edges are the field's own, not the image border cutting it
    use = row_has & (rows >= lo) & (rows <= hi) & (left > 0) & (right < w - 1)
    left_a, left_b, ok_l = _fit_line(rows, left, use)
    right_a, right_b, ok_r = _fit_line(rows, right, use)
    convergence = right_b - left_b
    safe = torch.where(convergence > 0, convergence, torch.ones_like(convergence))
    apex_y = (left_a - right_a) / safe
    apex_x = left_a + left_b * apex_y
    convex = ok_l & ok_r & (convergence > MIN_CONVERGENCE) & (apex_y < lo[:, 0])

    # with the apex above the field, a column's pixel nearest to it is its topmost one, and a
    # row's farthest pixel one of its ends (the face is an arc: top rows have a gap)
    ax, ay = apex_x[:, None], apex_y[:, None]
    nearest = torch.hypot(cols - ax, col_top - ay)
    r_min = torch.where(col_has, nearest, float("inf")).amin(dim=1)
    farthest = torch.maximum(torch.hypot(left - ax, rows - ay), torch.hypot(right - ax, rows - ay))
    r_max = torch.where(row_has, farthest, float("-inf")).amax(dim=1)
    finite = torch.isfinite(r_min) & torch.isfinite(r_max)
    return ScanGeometry(
        convex=convex,
        apex_x=apex_x,
        apex_y=apex_y,
        angle_left=torch.atan(left_b),
        angle_right=torch.atan(right_b),
        r_min=torch.where(finite, r_min, 0.0),
        r_max=torch.where(finite, r_max, 1.0),
        x0=torch.where(row_has, left, float(w)).amin(dim=1),
        x1=torch.where(row_has, right, -1.0).amax(dim=1),
        top=top,
        bottom=top + extent,
        height=h,
        width=w,
    )


def lateral_of(g: ScanGeometry) -> torch.Tensor:
    """Place across the field of view of every pixel: float [B, 1, H, W]."""
    cols, rows = _grid(g)
    angle = torch.atan2(cols - _per_image(g.apex_x), rows - _per_image(g.apex_y))
    span = (g.angle_right - g.angle_left).clamp_min(1e-6)
    fan = (angle - _per_image(g.angle_left)).div_(_per_image(span))
    flat = (cols - _per_image(g.x0)) / _per_image((g.x1 - g.x0).clamp_min(1.0))
    return torch.where(_per_image(g.convex), fan, flat)


def depth_of(g: ScanGeometry) -> torch.Tensor:
    """Distance from the transducer face along the beam of every pixel: float [B, 1, H, W]."""
    cols, rows = _grid(g)
    dx = cols - _per_image(g.apex_x)
    dy = rows - _per_image(g.apex_y)
    radius = (dx * dx + dy * dy).sqrt_()
    span = (g.r_max - g.r_min).clamp_min(1.0)
    fan = (radius - _per_image(g.r_min)).div_(_per_image(span))
    flat = (rows - _per_image(g.top)) / _per_image((g.bottom - g.top).clamp_min(1.0))
    return torch.where(_per_image(g.convex), fan, flat)


def beam_coordinates(masks: torch.Tensor) -> BeamCoordinates:
    """Beam coordinates of every pixel from bool scan masks [B, 1, H, W]."""
    g = scan_geometry(masks)
    apex = torch.stack([g.apex_x, g.apex_y], dim=1)
    apex = torch.where(g.convex[:, None], apex, torch.full_like(apex, float("nan")))
    return BeamCoordinates(lateral_of(g), depth_of(g), g.convex, apex)


def _grid(g: ScanGeometry) -> tuple[torch.Tensor, torch.Tensor]:
    device = g.apex_x.device
    cols = torch.arange(g.width, device=device, dtype=torch.float32).view(1, 1, 1, -1)
    rows = torch.arange(g.height, device=device, dtype=torch.float32).view(1, 1, -1, 1)
    return cols, rows


def _per_image(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


def _fit_line(
    rows: torch.Tensor, values: torch.Tensor, use: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares x = a + b y over the rows in `use`, per image: (a, b, enough rows)."""
    weight = use.to(torch.float32)
    count = weight.sum(dim=1)
    n = count.clamp_min(1.0)
    y_mean = (weight * rows).sum(dim=1) / n
    x = torch.where(use, values, torch.zeros_like(values))
    x_mean = (weight * x).sum(dim=1) / n
    dy = (rows - y_mean[:, None]) * weight
    var = (dy * dy).sum(dim=1)
    cov = (dy * (x - x_mean[:, None])).sum(dim=1)
    slope = cov / var.clamp_min(1e-6)
    intercept = x_mean - slope * y_mean
    return intercept, slope, (count >= 3) & (var > 0)
