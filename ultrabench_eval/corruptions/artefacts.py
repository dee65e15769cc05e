"""Artefacts that follow the beam: depth attenuation, near-field haze, reverberation.

All are functions of the beam coordinates (`geometry`): depth is the distance from the
transducer face along the beam as a fraction of the field's depth, so on a convex probe the
bands are arcs around the apex, on a linear one horizontal lines.

- `attenuation`: usaugment's `DepthAttenuation` (Ostvik et al., 2021), I exp(-rate d), with the
  depth d measured along the beam (usaugment: the distance from the image's top centre, which
  is the same thing for a sector whose apex sits there).
- `haze`: usaugment's `HazeArtifact` (Ostvik et al., 2021), near-field clutter: a band of
  bright texture at a random depth near the face, I + a T exp(-(d - r)^2 / (2 s^2)). T is
  uniform on [0, 1] at every pixel, as usaugment's, but correlated over a speckle grain (a
  Gaussian field passed through the normal CDF) where usaugment's is white.
- `reverberation`: repeated bright bands at multiples of one depth, fading with each repeat,
  under a random stretch of the face (multiple reflections between the face and a strong
  reflector, A-lines).
"""

from __future__ import annotations

import math

import torch

from ultrabench_eval.corruptions.base import Corruption, frozen, normal_noise, scaled, uniforms
from ultrabench_eval.corruptions.filters import filter_separable, gaussian_kernel
from ultrabench_eval.corruptions.geometry import beam_coordinates, depth_of, scan_geometry
from ultrabench_eval.corruptions.shadows import smoothstep
from ultrabench_eval.corruptions.speckle import unit_energy

MAX_BANDS = 6


def depth_attenuation(depth: torch.Tensor, rate: float, floor: float = 0.0) -> torch.Tensor:
    """usaugment's bounded exponential decay: (1 - floor) exp(-rate depth) + floor."""
    return (1.0 - floor) * torch.exp(-rate * depth) + floor


class Attenuation(Corruption):
    """Depth-dependent loss of gain: I exp(-rate d), d the depth along the beam."""

    name = "attenuation"
    description = "depth-dependent gain loss along the beam: I exp(-rate depth)"
    table = frozen({"rate": (0.2, 0.5, 0.9, 1.4, 2.2)})
    primary = "rate"
    units = frozen({"rate": "decay per field depth (exp(-rate) left at the bottom)"})

    def apply(self, images, masks, severity, generators):
        depth = depth_of(scan_geometry(masks)).clamp_(0.0, 1.0)
        return images * depth_attenuation(depth, self.parameter(severity))


def uniform_texture(
    generators: list[torch.Generator], like: torch.Tensor, grain_px: float
) -> torch.Tensor:
    """Noise uniform on [0, 1) at every pixel, correlated over `grain_px` pixels (sigma)."""
    z = normal_noise(generators, tuple(like.shape[1:]), like.device)
    kernel = unit_energy(gaussian_kernel(grain_px, max(1, math.ceil(2 * grain_px))))
    z = filter_separable(z, kernel, kernel, padding="circular")
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))


class Haze(Corruption):
    """Near-field clutter: a hazy band of bright texture near the transducer face."""

    name = "haze"
    description = "near-field haze: a band of bright clutter at a random shallow depth"
    table = frozen(
        {
            "amplitude": (0.1, 0.2, 0.3, 0.4, 0.5),
            "sigma": (0.05, 0.06, 0.07, 0.08, 0.1),
            "radius_min": (0.0,) * 5,
            "radius_max": (0.3,) * 5,
            "grain_px": (1.5,) * 5,
        }
    )
    primary = "amplitude"
    units = frozen(
        {
            "amplitude": "brightness added at the band centre, times the texture (usaugment: 0.5)",
            "sigma": "band half-width (Gaussian sigma), fraction of the field's depth",
            "radius_min": "shallowest band centre, fraction of the field's depth",
            "radius_max": "deepest band centre",
            "grain_px": "texture correlation sigma, pixels of a 224-px image",
        }
    )

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        depth = depth_of(scan_geometry(masks))
        draws = uniforms(generators, 1, images.device)
        radius = p["radius_min"] + (p["radius_max"] - p["radius_min"]) * draws[:, 0]
        band = torch.exp(-((depth - radius.view(-1, 1, 1, 1)) ** 2) / (2 * p["sigma"] ** 2))
        texture = uniform_texture(generators, images, scaled(p["grain_px"], images))
        return images + p["amplitude"] * texture * band


class Reverberation(Corruption):
    """Repeated bright bands at multiples of a depth, each fainter than the one before."""

    name = "reverberation"
    description = "reverberation: repeated bright bands at equal depth steps, fading"
    table = frozen(
        {
            "bands": (2, 3, 4, 5, 6),
            "amplitude": (0.12, 0.2, 0.28, 0.36, 0.45),
            "decay": (0.75,) * 5,
            "thickness": (0.012,) * 5,
            "spacing_min": (0.07,) * 5,
            "spacing_max": (0.12,) * 5,
        }
    )
    primary = "amplitude"
    units = frozen(
        {
            "bands": "number of repeats",
            "amplitude": "brightness added by the first band",
            "decay": "each band's brightness relative to the one above",
            "thickness": "band sigma, fraction of the field's depth",
            "spacing_min": "smallest depth step, fraction of the field's depth",
            "spacing_max": "largest depth step",
        }
    )

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        beams = beam_coordinates(masks)
        draws = uniforms(generators, 3, images.device)
        spacing = p["spacing_min"] + (p["spacing_max"] - p["spacing_min"]) * draws[:, 0]
        centre = (0.25 + 0.5 * draws[:, 1]).view(-1, 1, 1, 1)
        half = (0.15 + 0.15 * draws[:, 2]).view(-1, 1, 1, 1)
        across = smoothstep((half - (beams.lateral - centre).abs()) / 0.1 + 0.5)
        bands = torch.zeros_like(images)
        for k in range(1, min(int(p["bands"]), MAX_BANDS) + 1):
            at = (k * spacing).view(-1, 1, 1, 1)
            strength = p["amplitude"] * p["decay"] ** (k - 1)
            bands = bands + strength * torch.exp(
                -((beams.depth - at) ** 2) / (2 * p["thickness"] ** 2)
            )
        return images + bands * across
