"""Speckle: multiplicative noise correlated over the size of the point-spread function.

`speckle` is fully developed speckle as a scanner makes it. Each look is a complex Gaussian
field (the sum of many random scatterers) filtered by a Gaussian PSF; its intensity is
exponential, and the mean of L independent looks is Gamma(L, 1/L) in intensity, a Nakagami
amplitude (Rayleigh for L = 1). The field is drawn on a grid of beam coordinates (depth x
across, see `geometry`) and sampled at every pixel, so grains are elongated across the beam and
fan out with depth in a sector, as on a real scan. (Beyond 2 looks the Gamma intensity comes
from one correlated Gaussian field by the Wilson-Hilferty transform, which matches its quantiles
within 1 %, instead of 2 L complex fields.) The image is multiplied by the amplitude,
normalised to mean 1 inside the mask; severity lowers the number of looks and widens the PSF.

`us-jepa-speckle` is the US-JEPA paper's correlated speckle, I' = I (1 + eta_corr), eta ~ N(0,
(0.35 severity)^2). The paper leaves the kernel open; our choice: a Gaussian with sigma =
severity pixels (of a 224-px image), truncated at 2 floor(2 sigma) + 1 taps like its blur, and
scaled to unit L2 norm, so eta_corr keeps the stated standard deviation 0.35 severity (a kernel
summing to 1 would divide it by about 3.5 sigma and make every severity equally strong).
1 + eta is clipped at 0 (an intensity cannot turn negative); the view clips the result to
[0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ultrabench_eval.corruptions.base import Corruption, frozen, masked_mean, normal_noise, scaled
from ultrabench_eval.corruptions.filters import filter_separable, gaussian_kernel
from ultrabench_eval.corruptions.geometry import beam_coordinates


def unit_energy(kernel: torch.Tensor) -> torch.Tensor:
    """A kernel scaled so that filtering unit white noise keeps unit variance."""
    return kernel / kernel.square().sum().sqrt()


# up to this many looks the speckle is summed from complex fields exactly; beyond, one
# correlated Gaussian field goes through the Wilson-Hilferty transform (quantiles within 1 %)
EXACT_LOOKS = 2


def correlated_gamma(
    generators: list[torch.Generator],
    shape: tuple[int, int],
    looks: int,
    axial_sigma: float,
    lateral_sigma: float,
    device: torch.device,
) -> torch.Tensor:
    """Speckle intensity with mean 1, Gamma(looks, 1/looks) at every sample, correlated over a
    Gaussian PSF (sigmas in grid samples): float [B, 1, *shape]. Up to EXACT_LOOKS, the mean of
    `looks` exponential intensities of PSF-filtered complex Gaussian fields; more looks, the
    Wilson-Hilferty cube of one PSF-filtered Gaussian field."""
    exact = looks <= EXACT_LOOKS
    fields = normal_noise(generators, (2 * looks if exact else 1, *shape), device)
    along_y = unit_energy(gaussian_kernel(axial_sigma, max(1, math.ceil(3 * axial_sigma))))
    along_x = unit_energy(gaussian_kernel(lateral_sigma, max(1, math.ceil(3 * lateral_sigma))))
    fields = filter_separable(fields, along_y, along_x, padding="circular")
    if exact:
        # |re + i im|^2 / 2 of unit-variance parts: exponential with mean 1; mean of the looks
        return fields.square().mean(dim=1, keepdim=True)
    ninth = 1.0 / (9.0 * looks)
    return (1.0 - ninth + fields * math.sqrt(ninth)).clamp_min(0.0) ** 3


class Speckle(Corruption):
    """Multiplicative fully developed speckle in beam coordinates (see the module note)."""

    name = "speckle"
    description = "multiplicative speckle: Nakagami amplitude of L looks, PSF-correlated"
    table = frozen(
        {
            "looks": (40, 12, 5, 2, 1),
            "axial_psf_px": (0.6, 0.8, 1.0, 1.25, 1.5),
            "lateral_psf_px": (1.2, 1.6, 2.0, 2.5, 3.0),
        }
    )
    primary = "looks"
    units = frozen(
        {
            "looks": "independent looks L: intensity Gamma(L, 1/L), L = 1 is Rayleigh amplitude",
            "axial_psf_px": "PSF sigma along the beam, pixels of a 224-px image",
            "lateral_psf_px": "PSF sigma across the beam, pixels of a 224-px image",
        }
    )

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        h, w = images.shape[-2:]
        intensity = correlated_gamma(
            generators,
            (h, w),
            int(p["looks"]),
            scaled(p["axial_psf_px"], images),
            scaled(p["lateral_psf_px"], images),
            images.device,
        )
        beams = beam_coordinates(masks)
        grid = torch.cat([beams.lateral, beams.depth], dim=1).permute(0, 2, 3, 1) * 2.0 - 1.0
        sampled = F.grid_sample(
            intensity, grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        amplitude = sampled.clamp_min(0.0).sqrt()
        amplitude = amplitude / masked_mean(amplitude, masks).clamp_min(1e-6)
        return images * amplitude


class UsJepaSpeckle(Corruption):
    """The US-JEPA paper's correlated speckle I (1 + eta_corr) (see the module note)."""

    name = "us-jepa-speckle"
    description = "US-JEPA (2026) correlated speckle: I (1 + eta), eta ~ N(0, (0.35 s)^2)"
    table = frozen({"eta_std": (0.35, 0.7, 1.05), "kernel_sigma_px": (1.0, 2.0, 3.0)})
    primary = "eta_std"
    units = frozen(
        {
            "eta_std": "standard deviation of eta after smoothing (0.35 x severity)",
            "kernel_sigma_px": "Gaussian smoothing sigma, pixels of a 224-px image; kernel "
            "2 floor(2 sigma) + 1, unit L2 norm",
        }
    )

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        kernel = unit_energy(gaussian_kernel(scaled(p["kernel_sigma_px"], images)))
        eta = normal_noise(generators, tuple(images.shape[1:]), images.device)
        eta = filter_separable(eta, kernel, kernel, padding="circular") * p["eta_std"]
        return images * (1.0 + eta).clamp_min(0.0)
