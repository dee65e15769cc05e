"""Separable Gaussian filtering on the device, and the blur corruptions built on it.

A blur averages only pixels inside the scan mask (normalised convolution: blur of image x mask
divided by blur of mask), so the black outside never bleeds into the sector's edge.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ultrabench_eval.corruptions import cpu_kernels
from ultrabench_eval.corruptions.base import Corruption, frozen, scaled

# below this sigma the outer taps of a 3-tap kernel weigh under 1e-5: the identity
MIN_SIGMA = 0.2


def gaussian_kernel(sigma: float, radius: int | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian (float64), `2 radius + 1` taps; by default radius floor(2
    sigma), the kernel 2 floor(2 sigma) + 1 of the US-JEPA blur, and at least 3 taps for a
    sigma above MIN_SIGMA (a small sigma, such as a 224-px sigma scaled to a 32-px image, still
    blurs). sigma <= MIN_SIGMA: the identity."""
    if radius is None:
        radius = max(math.floor(2.0 * sigma), 1) if sigma > MIN_SIGMA else 0
    if sigma <= 0 or radius == 0:
        return torch.ones(1, dtype=torch.float64)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def filter_separable(
    x: torch.Tensor, along_y: torch.Tensor, along_x: torch.Tensor, padding: str = "zeros"
) -> torch.Tensor:
    """Correlate [N, C, H, W] with the outer product of two odd 1-D kernels. `padding`:
    "zeros" or "circular" (for stationary noise fields: every sample sees the whole kernel).
    On a CPU in OpenCV (`cpu_kernels`; uint8 in, float32 out), elsewhere in torch."""
    if x.device.type == "cpu" and x.dtype in cpu_kernels.DTYPES:
        return cpu_kernels.filter_planes(x, along_y, along_x, padding)
    out = _filter_axis(x, along_y, dim=2, padding=padding)
    return _filter_axis(out, along_x, dim=3, padding=padding)


def _filter_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int, padding: str) -> torch.Tensor:
    if kernel.numel() == 1:
        return x * float(kernel[0])
    return _filter_axis_shifted(x, kernel, dim, padding)


def _pad_axis(x: torch.Tensor, dim: int, before: int, after: int, padding: str) -> torch.Tensor:
    pad = (0, 0, before, after) if dim == 2 else (before, after, 0, 0)
    return F.pad(x, pad) if padding == "zeros" else F.pad(x, pad, mode="circular")


def _filter_axis_shifted(
    x: torch.Tensor, kernel: torch.Tensor, dim: int, padding: str
) -> torch.Tensor:
    """A sum of shifted slices, the device path (and a CPU's for other dtypes): on a GPU one
    light kernel per tap, and no convolution or matrix product that TF32 settings could
    change."""
    radius = kernel.numel() // 2
    padded = _pad_axis(x, dim, radius, radius, padding)
    size = x.shape[dim]
    values = kernel.tolist()
    out = padded.narrow(dim, 0, size) * values[0]
    for tap in range(1, len(values)):
        out.add_(padded.narrow(dim, tap, size), alpha=values[tap])
    return out


def masked_blur(
    images: torch.Tensor, masks: torch.Tensor, along_y: torch.Tensor, along_x: torch.Tensor
) -> torch.Tensor:
    """Gaussian blur that averages only pixels inside the mask: blur(image x mask) /
    blur(mask), float images in, float out. Outside the mask the values are finite but
    meaningless: a corruption's caller puts the outside back."""
    weight = masks.to(images.dtype)
    both = filter_separable(torch.cat([images * weight, weight], dim=1), along_y, along_x)
    # inside the mask the pixel's own tap keeps the weight sum far above the floor, which only
    # keeps 0 / 0 out of the pixels outside
    return both[:, :1].div_(both[:, 1:].clamp_min_(1e-6))


class Blur(Corruption):
    """Lateral/axial widening of the point-spread function: an anisotropic Gaussian blur,
    wider across the beam than along it (image axes: lateral = horizontal)."""

    name = "blur"
    description = "PSF widening: Gaussian blur, lateral sigma twice the axial one"
    table = frozen(
        {
            "axial_sigma_px": (0.5, 0.75, 1.0, 1.5, 2.0),
            "lateral_sigma_px": (1.0, 1.5, 2.0, 3.0, 4.0),
        }
    )
    primary = "lateral_sigma_px"
    units = frozen(
        {
            "axial_sigma_px": "vertical Gaussian sigma, pixels of a 224-px image; "
            "kernel 2 floor(2 sigma) + 1",
            "lateral_sigma_px": "horizontal Gaussian sigma, pixels of a 224-px image",
        }
    )

    def sigmas(self, severity: int) -> tuple[float, float]:
        """(axial, lateral) sigma in pixels of a 224-pixel image."""
        p = self.parameters(severity)
        return p["axial_sigma_px"], p["lateral_sigma_px"]

    def kernels(self, severity: int, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (vertical, horizontal) 1-D kernels for `images`' size."""
        axial, lateral = self.sigmas(severity)
        return gaussian_kernel(scaled(axial, images)), gaussian_kernel(scaled(lateral, images))

    def apply(self, images, masks, severity, generators):
        return masked_blur(images, masks, *self.kernels(severity, images))

    def apply_bytes(self, images, masks, severity):
        """On a CPU: from the bytes to the bytes, each image in one go (no float batch to
        make, scale and round in eager passes, which would cost more than the filter)."""
        if images.device.type != "cpu":
            return None
        return cpu_kernels.normalised_blur_bytes(images, masks, *self.kernels(severity, images))


class UsJepaBlur(Blur):
    """The US-JEPA paper's Gaussian blur: sigma = severity, kernel 2 floor(2 sigma) + 1."""

    name = "us-jepa-blur"
    description = "US-JEPA (2026) Gaussian blur: sigma = severity px, kernel 5 / 9 / 13"
    table = frozen({"sigma_px": (1.0, 2.0, 3.0)})
    primary = "sigma_px"
    units = frozen(
        {
            "sigma_px": "isotropic Gaussian sigma, pixels of a 224-px image; "
            "kernel 2 floor(2 sigma) + 1"
        }
    )

    def sigmas(self, severity: int) -> tuple[float, float]:
        sigma = self.parameter(severity)
        return sigma, sigma
