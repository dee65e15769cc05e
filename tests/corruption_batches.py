"""Small image batches with scan masks for the corruption tests: textured images inside a
convex sector (apex above the image) or a linear rectangle, on black."""

from __future__ import annotations

import math

import numpy as np
import torch


def sector_mask(size: int, apex_y: float = -0.3, half_angle_deg: float = 35.0) -> torch.Tensor:
    """bool [size, size]: a convex sector whose apex lies above the image centre at `apex_y`
    image widths (negative: above the top), from just below the top to near the bottom."""
    ax, ay = (size - 1) / 2, apex_y * size
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float64),
        torch.arange(size, dtype=torch.float64),
        indexing="ij",
    )
    r = torch.hypot(xx - ax, yy - ay)
    fan = torch.atan2(xx - ax, yy - ay).abs() <= math.radians(half_angle_deg)
    return fan & (r >= -ay + 0.06 * size) & (r <= -ay + 0.95 * size)


def linear_mask(size: int) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[size // 16 : size - size // 16, size // 5 : size - size // 5] = True
    return mask


def batch(n: int = 6, size: int = 64, seed: int = 0, kinds=("convex", "linear")):
    """uint8 images [n, 1, size, size], uint8 0/1 masks, ids: smooth texture (values 40..200)
    inside the mask, 0 outside; kinds alternate."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, size // 4, size // 4, generator=g)
    texture = torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear")
    fine = torch.rand(n, 1, size, size, generator=g)
    values = 40 + 120 * texture + 40 * fine
    masks = torch.stack(
        [
            (sector_mask(size) if kinds[i % len(kinds)] == "convex" else linear_mask(size))
            for i in range(n)
        ]
    )[:, None]
    images = torch.where(masks, values, torch.zeros_like(values)).round().to(torch.uint8)
    return images, masks.to(torch.uint8), [f"img{seed}_{i}.png" for i in range(n)]


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def numpy_image(images: torch.Tensor, i: int = 0) -> np.ndarray:
    return images[i, 0].numpy()
