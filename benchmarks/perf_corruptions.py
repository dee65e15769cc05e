"""`make perf`, the corruption half: how fast the corruptions run.

For each corruption of the two suites, at its middle severity: images per second of the view
applied to uint8 batches already on the device (as extraction applies it: from the stored bytes
to corrupted bytes, inside the scan mask, the outside restored), against the same
transform done the usual way, one image at a time on the CPU with albumentations, usaugment or
OpenCV (with the same conversion and mask restore), where such a transform exists. Corruptions
with no counterpart there (our speckle, beam-following shadows, reverberation, the US-JEPA
speckle) report the device figure alone.

Writes `results/perf/corruptions-<device>.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.perf import machine, write_figures
from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.presets import PRESETS
from ultrabench_eval.corruptions.views import View

REPEATS = 3


def test_images(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, S, S] with textured content inside alternating convex-sector and
    linear scan masks, and the masks (0/1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    apex_y = -0.3 * size
    radius = np.hypot(xx - (size - 1) / 2, yy - apex_y)
    fan = (np.abs(np.arctan2(xx - (size - 1) / 2, yy - apex_y)) < math.radians(35)) & (
        radius > -apex_y + 0.06 * size
    )
    sector = fan & (radius < -apex_y + 0.95 * size)
    linear = np.zeros((size, size), dtype=bool)
    linear[size // 16 : -size // 16, size // 5 : -size // 5] = True
    masks = np.stack([sector if i % 2 == 0 else linear for i in range(count)])
    coarse = rng.random((count, size // 8, size // 8), dtype=np.float32)
    texture = np.kron(coarse, np.ones((8, 8), dtype=np.float32))[:, :size, :size]
    values = 40 + 120 * texture + 60 * rng.random((count, size, size), dtype=np.float32)
    images = np.where(masks, values, 0).round().astype(np.uint8)
    return images, masks.astype(np.uint8)


def device_rate(view: View, images: torch.Tensor, masks: torch.Tensor, batch_size: int) -> float:
    """Images per second of `view.apply` over uint8 batches already on the device."""
    ids = [f"perf{i}" for i in range(images.shape[0])]

    def once() -> None:
        for start in range(0, images.shape[0], batch_size):
            stop = start + batch_size
            view.apply(images[start:stop], masks[start:stop], ids[start:stop])
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)

    once()  # warm-up: kernels, allocator, caches
    return images.shape[0] / _best_seconds(once)


def cpu_rate(transform: Callable[[np.ndarray, np.ndarray], np.ndarray], images, masks) -> float:
    """Images per second of a per-image CPU transform on float [0, 1] images, with the same
    conversions and mask restore as a view."""

    def once() -> None:
        for image, mask in zip(images, masks, strict=True):
            x = image.astype(np.float32) / 255.0
            out = np.clip(transform(x, mask), 0.0, 1.0)
            out = np.where(mask > 0, out, x)
            (out * 255.0).round().astype(np.uint8)

    once()
    return len(images) / _best_seconds(once)


def _best_seconds(run: Callable[[], None]) -> float:
    best = math.inf
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def cpu_references(severity_of: dict[str, int]) -> dict[str, tuple[str, Callable]]:
    """{corruption: (what, per-image transform)} for the corruptions with the same transform
    in albumentations, usaugment or OpenCV, at the parameters of the measured severity."""
    import albumentations as A
    import cv2
    from usaugment.albumentations import DepthAttenuation, GaussianShadow, HazeArtifact

    def p(name: str) -> dict[str, float]:
        return CORRUPTIONS.get(name).parameters(severity_of[name])

    def run(transform) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return lambda x, mask: transform(image=x, scan_mask=mask)["image"]

    sigma = p("gaussian-noise")["sigma"]
    jepa_sigma = p("us-jepa-blur")["sigma_px"]
    jepa_size = 2 * int(2 * jepa_sigma) + 1
    blur = p("blur")
    ky, kx = (2 * int(2 * blur["axial_sigma_px"]) + 1, 2 * int(2 * blur["lateral_sigma_px"]) + 1)
    quality = int(p("jpeg")["quality"])
    shadow = p("gaussian-shadow")
    haze = p("haze")
    gain = p("gain")["shift"]

    def contrast(alpha: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        def depleted(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
            median = np.median(x[mask > 0])
            return median + alpha * (x - median)

        return depleted

    def jpeg(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        compress = A.ImageCompression(quality_range=(quality, quality), p=1.0)
        return compress(image=(x * 255).round().astype(np.uint8))["image"] / 255.0

    return {
        "gaussian-noise": (
            "albumentations.GaussNoise",
            run(A.GaussNoise(std_range=(sigma, sigma), mean_range=(0, 0), p=1.0)),
        ),
        "us-jepa-blur": (
            "albumentations.GaussianBlur",
            run(A.GaussianBlur(blur_limit=(jepa_size, jepa_size), sigma_limit=(jepa_sigma,) * 2)),
        ),
        "blur": (
            "cv2.GaussianBlur (anisotropic)",
            lambda x, mask: cv2.GaussianBlur(
                x, (kx, ky), blur["lateral_sigma_px"], sigmaY=blur["axial_sigma_px"]
            ),
        ),
        "jpeg": ("albumentations.ImageCompression (OpenCV JPEG)", jpeg),
        "attenuation": (
            "usaugment.DepthAttenuation",
            run(DepthAttenuation(attenuation_rate=p("attenuation")["rate"], p=1.0)),
        ),
        "gaussian-shadow": (
            "usaugment.GaussianShadow",
            run(
                GaussianShadow(
                    strength=shadow["strength"],
                    sigma_x=(shadow["sigma_min"], shadow["sigma_max"]),
                    sigma_y=(shadow["sigma_min"], shadow["sigma_max"]),
                    p=1.0,
                )
            ),
        ),
        "haze": (
            "usaugment.HazeArtifact",
            run(HazeArtifact(radius=(0.0, 0.3), sigma=haze["sigma"], p=1.0)),
        ),
        "gain": (
            "albumentations.RandomBrightnessContrast (brightness only)",
            run(A.RandomBrightnessContrast(brightness_limit=(gain, gain), contrast_limit=0, p=1.0)),
        ),
        "contrast": ("numpy (median about the mask)", contrast(p("contrast")["alpha"])),
        "us-jepa-contrast": (
            "numpy (median about the mask)",
            contrast(p("us-jepa-contrast")["alpha"]),
        ),
    }


def measure(
    device: torch.device, count: int, size: int, batch_size: int, cpu_count: int
) -> dict[str, Any]:
    images, masks = test_images(count, size)
    on_device = torch.from_numpy(images)[:, None].to(device)
    masks_on_device = torch.from_numpy(masks)[:, None].to(device)
    names = [c for preset in PRESETS.values() for c in preset.corruptions]
    severity_of = {n: (CORRUPTIONS.get(n).max_severity + 1) // 2 for n in names}
    references = cpu_references(severity_of)
    rows = {}
    for name in names:
        view = View.parse(f"{name}:{severity_of[name]}")
        ours = device_rate(view, on_device, masks_on_device, batch_size)
        row: dict[str, Any] = {
            "severity": severity_of[name],
            "device_images_per_second": round(ours, 1),
        }
        if name in references:
            what, transform = references[name]
            theirs = cpu_rate(transform, images[:cpu_count], masks[:cpu_count])
            row |= {
                "cpu_reference": what,
                "cpu_per_image_images_per_second": round(theirs, 1),
                "speedup_vs_cpu_per_image": round(ours / theirs, 2),
            }
        else:
            row["cpu_reference"] = None
        rows[name] = row
        print(f"{name:>18}: {json.dumps(row)}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf_corruptions", description=__doc__
    )
    parser.add_argument("--out", default="results/perf")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=256, help="images per device pass")
    parser.add_argument("--cpu-images", type=int, default=128, help="images per CPU pass")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch and OpenCV (default: torch's; 1 on a CPU shared with other "
        "work, where more threads wait on each other)",
    )
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    started = time.perf_counter()
    rows = measure(device, args.images, args.size, args.batch_size, args.cpu_images)
    figures = {
        **machine(device),
        "image_size": args.size,
        "batch_size": args.batch_size,
        "images": args.images,
        "repeats": REPEATS,
        "corruptions": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_figures(figures, args.out, "corruptions", device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
