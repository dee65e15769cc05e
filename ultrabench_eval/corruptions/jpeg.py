"""JPEG compression in torch, on the device: what a baseline grayscale JPEG round trip does.

8-bit samples shifted by -128, 8x8 blocks (the image padded by repeating its last row and
column, as libjpeg does), an orthonormal 2-D DCT-II per block, each coefficient divided by the
standard luminance quantisation table (ITU-T T.81 Annex K) scaled by the quality as the IJG
library scales it, rounded, multiplied back, the inverse DCT, rounded and clipped to 0..255.
libjpeg's integer DCT differs from this float one by a rounding here and there; a test checks
the result against PIL's encoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ultrabench_eval.corruptions.base import Corruption, frozen

BLOCK = 8
# ITU-T T.81 Annex K, Table K.1: luminance quantisation table, row by row
LUMINANCE_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)


def quantisation_table(quality: int) -> torch.Tensor:
    """The luminance table scaled for `quality` (1..100) as the IJG library does it (baseline:
    entries clipped to 1..255): float64 [8, 8]."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor(LUMINANCE_TABLE, dtype=torch.int64)
    return ((base * scale + 50) // 100).clamp(1, 255).to(torch.float64)


def dct_matrix(n: int = BLOCK) -> torch.Tensor:
    """The orthonormal DCT-II matrix: coefficients = D @ block @ D.T (float64 [n, n])."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix


def jpeg_round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """float [B, 1, H, W] in [0, 1] -> the decoded JPEG at `quality`, float in [0, 1]."""
    b, c, h, w = images.shape
    # float64, so that a coefficient lands on the same side of a rounding boundary on every
    # device (float32 sums in a different order on a GPU)
    samples = images.to(torch.float64).clamp_(0.0, 1.0).mul_(255.0).round_().sub_(128.0)
    pad_h, pad_w = -h % BLOCK, -w % BLOCK
    if pad_h or pad_w:
        samples = F.pad(samples, (0, pad_w, 0, pad_h), mode="replicate")
    hh, ww = samples.shape[-2:]
    rows, cols = hh // BLOCK, ww // BLOCK
    # One row of 64 samples per block: the 2-D DCT of a row-major block B, D B D^T, is that row
    # times (D kron D)^T, so the whole batch is one large GEMM instead of many 8x8 ones; the
    # quantisation table is folded into the two matrices (one pass over the data fewer each).
    blocks = samples.view(b, c, rows, BLOCK, cols, BLOCK).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(-1, BLOCK * BLOCK)
    dct = dct_matrix().to(images.device)
    dct2 = torch.kron(dct, dct)
    table = quantisation_table(quality).to(images.device).reshape(BLOCK * BLOCK)
    quantised = (blocks @ (dct2.T / table)).round_()
    decoded = quantised @ (table.unsqueeze(1) * dct2)
    decoded = decoded.view(b, c, rows, cols, BLOCK, BLOCK).permute(0, 1, 2, 4, 3, 5)
    decoded = decoded.reshape(b, c, hh, ww)[..., :h, :w]
    return decoded.add(128.0).round_().clamp_(0.0, 255.0).to(images.dtype).div_(255.0)


class JpegCompression(Corruption):
    """A baseline JPEG round trip at decreasing quality (block artefacts, lost fine texture)."""

    name = "jpeg"
    description = "JPEG compression: 8x8 DCT quantised with the scaled luminance table"
    table = frozen({"quality": (30, 20, 14, 9, 5)})
    primary = "quality"
    units = frozen({"quality": "IJG quality (1..100) scaling the standard luminance table"})

    def apply(self, images, masks, severity, generators):
        return jpeg_round_trip(images, int(self.parameter(severity)))
