"""Separable Gaussian filtering, the masked blur, and the blurs against albumentations/OpenCV."""

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from corruption_batches import as_float, batch

from ultrabench_eval.corruptions.filters import (
    Blur,
    UsJepaBlur,
    filter_separable,
    gaussian_kernel,
    masked_blur,
)


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0, 3.0])
def test_kernel_is_opencvs_gaussian_with_the_papers_size(sigma):
    kernel = gaussian_kernel(sigma)
    size = 2 * int(2 * sigma) + 1
    assert kernel.numel() == size
    reference = cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_64F)[:, 0]
    np.testing.assert_allclose(kernel.numpy(), reference, rtol=1e-12)
    assert gaussian_kernel(0.1).tolist() == [1.0]  # below MIN_SIGMA: the identity
    assert gaussian_kernel(0.3).numel() == 3  # a small sigma still blurs


def test_shift_and_add_equals_a_convolution():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 17, generator=g)
    ky, kx = gaussian_kernel(1.3), gaussian_kernel(0.8)
    ours = filter_separable(x, ky, kx)
    weight = (ky[:, None] * kx[None, :]).float()[None, None].repeat(3, 1, 1, 1)
    pad = (kx.numel() // 2, kx.numel() // 2, ky.numel() // 2, ky.numel() // 2)
    reference = torch.nn.functional.conv2d(torch.nn.functional.pad(x, pad), weight, groups=3)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    circular = filter_separable(x, ky, kx, padding="circular")
    rolled = filter_separable(torch.roll(x, 5, dims=3), ky, kx, padding="circular")
    torch.testing.assert_close(torch.roll(circular, 5, dims=3), rolled)


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_us_jepa_blur_equals_albumentations_gaussian_blur(severity):
    """Same sigma and kernel: the same image, away from the border (where the masked blur
    renormalises and OpenCV reflects)."""
    images, _, _ = batch(1, size=224, kinds=("linear",))
    x = as_float(images)
    full = torch.ones_like(images, dtype=torch.bool)
    ours = UsJepaBlur().apply(x, full, severity, [])[0, 0].numpy()
    size = 2 * int(2 * severity) + 1
    blur = A.GaussianBlur(blur_limit=(size, size), sigma_limit=(severity, severity), p=1.0)
    theirs = blur(image=x[0, 0].numpy())["image"]
    r = size // 2
    np.testing.assert_allclose(ours[r:-r, r:-r], theirs[r:-r, r:-r], atol=2e-6)


def test_masked_blur_keeps_the_black_outside_out():
    images, masks, _ = batch(2, size=64)
    flat = torch.where(masks.bool(), torch.full_like(images, 150), images)
    x, inside = as_float(flat), masks.bool()
    out = masked_blur(x, inside, gaussian_kernel(2.0), gaussian_kernel(2.0))
    # a constant field stays constant right up to the sector's edge
    torch.testing.assert_close(out[inside], x[inside])
    assert bool(out.isfinite().all())  # outside: meaningless (the view puts it back), finite


def test_blur_is_wider_across_the_beam():
    x = torch.zeros(1, 1, 224, 224)
    x[0, 0, 112, 112] = 1.0
    full = torch.ones_like(x, dtype=torch.bool)
    out = Blur().apply(x, full, 5, [])[0, 0]
    across, along = (out[112] > 1e-3).sum(), (out[:, 112] > 1e-3).sum()
    assert across == 2 * 8 + 1 and along == 2 * 4 + 1  # sigmas 4 and 2 px: kernels 17 and 9
