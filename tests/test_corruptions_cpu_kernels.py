"""The OpenCV kernels of the CPU: the same filter as the device path, the blur from bytes to
bytes the same as the float blur, whatever the threads and the batch."""

import pytest
import torch
from corruption_batches import batch

from ultrabench_eval.corruptions import cpu_kernels
from ultrabench_eval.corruptions.base import to_bytes
from ultrabench_eval.corruptions.filters import (
    Blur,
    UsJepaBlur,
    _filter_axis_shifted,
    gaussian_kernel,
    masked_blur,
)


def _device_path(x, along_y, along_x, padding):
    return _filter_axis_shifted(_filter_axis_shifted(x, along_y, 2, padding), along_x, 3, padding)


@pytest.mark.parametrize("padding", ["zeros", "circular"])
@pytest.mark.parametrize(("height", "width", "sigma"), [(20, 17, 1.3), (64, 96, 4.0), (9, 40, 9.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opencv_planes_equal_the_device_path(padding, height, width, sigma, dtype):
    # sizes off any grid, kernels wider than the image (zeros), anisotropic kernels
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, height, width, generator=g, dtype=dtype)
    along_y, along_x = gaussian_kernel(sigma), gaussian_kernel(sigma / 2)
    if padding == "circular" and along_y.numel() // 2 > height:
        along_y = gaussian_kernel(1.0)  # circular padding cannot wrap more than the axis once
    ours = cpu_kernels.filter_planes(x, along_y, along_x, padding)
    assert ours.shape == x.shape and ours.dtype == dtype
    reference = _device_path(x, along_y.to(dtype), along_x.to(dtype), padding)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_bytes_are_filtered_into_floats():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (2, 1, 30, 41), generator=g, dtype=torch.uint8)
    kernel = gaussian_kernel(1.5)
    ours = cpu_kernels.filter_planes(x, kernel, kernel, "zeros")
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, _device_path(x.float(), kernel, kernel, "zeros"))


def _float_road(blur, images, masks, severity):
    inside = masks.bool()
    x = images.float() / 255.0
    changed = blur.apply(x, inside, severity, []).clamp(0.0, 1.0)
    return torch.where(inside, to_bytes(changed * 255.0), images)


@pytest.mark.parametrize("blur", [Blur(), UsJepaBlur()], ids=lambda b: b.name)
def test_the_bytes_road_is_the_float_blur(blur):
    images, masks, _ = batch(6, size=96)
    for severity in range(1, blur.max_severity + 1):
        ours = blur.apply_bytes(images, masks, severity)
        theirs = _float_road(blur, images, masks, severity)
        outside = masks == 0
        assert torch.equal(ours[outside], images[outside])
        difference = (ours.int() - theirs.int()).abs()
        assert int(difference.max()) <= 1  # a rounding at a half level may fall the other way
        assert float((difference > 0).float().mean()) < 1e-3


def test_masked_blur_floats_and_bytes_give_one_blur():
    images, masks, _ = batch(3, size=64)
    along_y, along_x = gaussian_kernel(1.0), gaussian_kernel(2.0)
    inside = masks.bool()
    floats = masked_blur(images.float(), inside, along_y, along_x)
    bytes_ = cpu_kernels.normalised_blur_bytes(images, masks, along_y, along_x)
    rounded = floats.round().clamp(0, 255).to(torch.uint8)
    assert int((bytes_.int() - rounded.int())[inside].abs().max()) <= 1


def test_masks_as_bool_zero_one_or_zero_255_are_one_mask():
    images, masks, _ = batch(3, size=48)
    kernel = gaussian_kernel(1.2)
    reference = cpu_kernels.normalised_blur_bytes(images, masks, kernel, kernel)
    for other in (masks.bool(), masks * 255):
        assert torch.equal(
            cpu_kernels.normalised_blur_bytes(images, other, kernel, kernel), reference
        )


def test_the_same_whatever_the_threads_and_the_batch():
    images, masks, _ = batch(7, size=48)
    kernel = gaussian_kernel(1.7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = cpu_kernels.normalised_blur_bytes(images, masks, kernel, kernel)
        planes_alone = cpu_kernels.filter_planes(images.float(), kernel, kernel, "zeros")
        torch.set_num_threads(3)
        shared = cpu_kernels.normalised_blur_bytes(images, masks, kernel, kernel)
        planes_shared = cpu_kernels.filter_planes(images.float(), kernel, kernel, "zeros")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(alone, shared) and torch.equal(planes_alone, planes_shared)
    one = cpu_kernels.normalised_blur_bytes(images[4:5], masks[4:5], kernel, kernel)
    assert torch.equal(one, alone[4:5])


def test_an_empty_batch_gives_an_empty_batch():
    images, masks, _ = batch(1, size=32)
    kernel = gaussian_kernel(1.0)
    out = cpu_kernels.normalised_blur_bytes(images[:0], masks[:0], kernel, kernel)
    assert out.shape == (0, 1, 32, 32) and out.dtype == torch.uint8


def test_a_forked_process_gets_a_pool_of_its_own(monkeypatch):
    pool = cpu_kernels._thread_pool(1)
    assert cpu_kernels._thread_pool(1) is pool
    monkeypatch.setattr(cpu_kernels.os, "getpid", lambda: -1)
    assert cpu_kernels._thread_pool(1) is not pool
