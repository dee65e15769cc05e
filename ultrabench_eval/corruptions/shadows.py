"""Shadows: acoustic shadows along the beam, and usaugment's Gaussian shadow.

`shadow`: behind a strongly reflecting or attenuating structure (bone, calcification, gas) the
beam carries almost no energy, so a dark band runs along the beam from that depth to the bottom
of the field of view. Bands are placed in beam coordinates (`geometry`): straight down on a
linear probe, along the fan's radii on a convex one, with soft lateral edges and a short onset.

`gaussian-shadow`: usaugment's `GaussianShadow` (Smistad et al., 2018) in torch: the image times
1 - strength exp(-((x - mx)^2 / (2 sx^2) + (y - my)^2 / (2 sy^2))), sx and sy fractions of the
width and height. One difference: the centre is a random pixel inside the scan mask (usaugment
takes any pixel of the image), so every draw shadows the scan.
"""

from __future__ import annotations

import torch

from ultrabench_eval.corruptions.base import Corruption, frozen, uniforms
from ultrabench_eval.corruptions.geometry import beam_coordinates

MAX_SHADOWS = 3  # draws per image are the same at every severity, so severities nest
ONSET = 0.04  # depth over which a shadow darkens fully, fraction of the field's depth


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class AcousticShadow(Corruption):
    """Dark bands along the beam from a random depth to the bottom of the field of view."""

    name = "shadow"
    description = "acoustic shadows: dark bands along the beam from a random depth down"
    table = frozen(
        {
            "count": (1, 1, 2, 2, 3),
            "width": (0.06, 0.08, 0.09, 0.11, 0.13),
            "strength": (0.2, 0.35, 0.55, 0.75, 0.9),
            "start_min": (0.15,) * 5,
            "start_max": (0.6,) * 5,
        }
    )
    primary = "strength"
    units = frozen(
        {
            "count": "shadows per image",
            "width": "band width, fraction of the field's width (x 0.75-1.25 at random)",
            "strength": "intensity removed in the band (1: black)",
            "start_min": "shallowest start, fraction of the field's depth",
            "start_max": "deepest start, fraction of the field's depth",
        }
    )

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        beams = beam_coordinates(masks)
        draws = uniforms(generators, 3 * MAX_SHADOWS, images.device).view(-1, MAX_SHADOWS, 3)
        factor = torch.ones_like(images)
        for k in range(int(p["count"])):
            centre = (0.1 + 0.8 * draws[:, k, 0]).view(-1, 1, 1, 1)
            width = (p["width"] * (0.75 + 0.5 * draws[:, k, 1])).view(-1, 1, 1, 1)
            start = p["start_min"] + (p["start_max"] - p["start_min"]) * draws[:, k, 2]
            edge = 0.3 * width
            across = smoothstep((width / 2 - (beams.lateral - centre).abs()) / edge + 0.5)
            along = smoothstep((beams.depth - start.view(-1, 1, 1, 1)) / ONSET)
            factor = factor * (1.0 - p["strength"] * across * along)
        return images * factor


def gaussian_shadow_map(
    height: int,
    width: int,
    centre_x: torch.Tensor,
    centre_y: torch.Tensor,
    sigma_x: torch.Tensor,
    sigma_y: torch.Tensor,
    strength: torch.Tensor,
) -> torch.Tensor:
    """usaugment's shadow image per image: [B, 1, H, W]; centres in pixels, sigmas as fractions
    of the width and height, all [B]."""
    device = centre_x.device
    xx = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, 1, width)
    yy = torch.arange(height, device=device, dtype=torch.float32).view(1, 1, height, 1)

    def col(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.float32).view(-1, 1, 1, 1)

    sx, sy = col(sigma_x) * width, col(sigma_y) * height
    exponent = (xx - col(centre_x)) ** 2 / (2 * sx**2) + (yy - col(centre_y)) ** 2 / (2 * sy**2)
    return 1.0 - col(strength) * torch.exp(-exponent)


def pixel_in_mask(masks: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x, y) of a pixel inside each mask, chosen by a uniform number u in [0, 1) [B]
    (uniform over the mask's pixels; the centre pixel for an empty mask)."""
    b, _, h, w = masks.shape
    counts = masks.reshape(b, -1).to(torch.int64).cumsum(dim=1)
    total = counts[:, -1]
    # float32 rounding can lift u to 1.0: keep the pick inside the mask
    picked = (u.to(torch.float64) * total).floor().to(torch.int64)
    target = torch.minimum(picked, (total - 1).clamp_min(0)) + 1
    index = torch.searchsorted(counts, target[:, None]).squeeze(1).clamp_max(h * w - 1)
    index = torch.where(total > 0, index, torch.full_like(index, (h // 2) * w + w // 2))
    return (index % w).to(torch.float32), (index // w).to(torch.float32)


class GaussianShadow(Corruption):
    """usaugment's GaussianShadow, its centre inside the scan mask (see the module note)."""

    name = "gaussian-shadow"
    description = "usaugment's Gaussian shadow: 1 - strength x a 2-D Gaussian blob"
    table = frozen(
        {
            "strength": (0.25, 0.4, 0.55, 0.7, 0.85),
            "sigma_min": (0.05,) * 5,
            "sigma_max": (0.2,) * 5,
        }
    )
    primary = "strength"
    units = frozen(
        {
            "strength": "darkening at the centre",
            "sigma_min": "smallest sigma_x, sigma_y, fraction of the width and height",
            "sigma_max": "largest sigma_x, sigma_y (each drawn uniformly in between)",
        }
    )

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        draws = uniforms(generators, 3, images.device)
        centre_x, centre_y = pixel_in_mask(masks, draws[:, 0])
        spread = p["sigma_max"] - p["sigma_min"]
        sigma_x = p["sigma_min"] + spread * draws[:, 1]
        sigma_y = p["sigma_min"] + spread * draws[:, 2]
        strength = torch.full_like(sigma_x, p["strength"])
        h, w = images.shape[-2:]
        return images * gaussian_shadow_map(h, w, centre_x, centre_y, sigma_x, sigma_y, strength)
