"""What every corruption is: a name, graded severities with their parameters, and a batched,
seeded `apply`; plus the helpers corruptions share to draw their randomness.

Randomness. Each image comes with its own CPU `torch.Generator` (seeded from the seed, the view
and the image id), so an image is corrupted the same way whatever batch it is in. Scalars (where
a shadow falls, how deep a band sits) are drawn on the CPU from it, a handful of numbers per
image, and so are the same on every device. Image-sized noise is drawn on the images' device
from a generator seeded by one draw of the image's CPU generator: no CPU round trip, and the
same statistics everywhere, but not the same pixels on a CPU and a GPU (their generators differ).

Sizes. A parameter in pixels is given for a 224-pixel image and scaled with the image's side,
so an image stored at another size (a model's input size) gets the same corruption of the scene.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch

REFERENCE_SIDE = 224  # pixel parameters are written for an image this wide


class Corruption(ABC):
    """A corruption with severities 1..max_severity.

    `table` lists every parameter at every severity ({parameter: (value at 1, ..., at max)});
    `levels` is its `primary` column. `units` says what each parameter means. Bump `version`
    when the same parameters give a different image, so cached features are not reused.
    """

    name: str = ""
    description: str = ""
    table: Mapping[str, tuple[float, ...]] = MappingProxyType({})
    primary: str = ""
    units: Mapping[str, str] = MappingProxyType({})
    version: int = 1

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(self.table[self.primary]) if self.table else ()

    @property
    def max_severity(self) -> int:
        return len(self.levels)

    def parameter(self, severity: int) -> float:
        return self.levels[severity - 1]

    def parameters(self, severity: int) -> dict[str, float]:
        """Every parameter at `severity`."""
        if not self.table:
            return {"level": self.parameter(severity)}
        return {key: values[severity - 1] for key, values in self.table.items()}

    def fingerprint(self) -> str:
        """What the output depends on besides the images and the seed: the class, its version
        and its parameters (8 hex digits)."""
        payload = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": self.version,
            "levels": list(self.levels),
            "table": {k: list(v) for k, v in self.table.items()},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]

    @abstractmethod
    def apply(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        severity: int,
        generators: list[torch.Generator],
    ) -> torch.Tensor:
        """float [B, 1, H, W] in [0, 1], masks bool [B, 1, H, W] -> corrupted float
        [B, 1, H, W] (the caller clamps to [0, 1] and restores the outside of the mask);
        one CPU generator per image."""

    def apply_bytes(
        self, images: torch.Tensor, masks: torch.Tensor, severity: int
    ) -> torch.Tensor | None:
        """A faster road for a corruption that draws nothing, applied alone, where it has one:
        the image store's uint8 [B, 1, H, W] batch and its masks (nonzero inside) -> the
        finished uint8 batch, the outside of the mask exactly as it was, the inside as `apply`
        gives it up to float rounding. None: no such road for these tensors, and `apply` is
        used. No random streams are passed: every lone corruption is offered this road, and
        making streams for the many that decline it would be work thrown away."""
        return None


def to_bytes(levels: torch.Tensor) -> torch.Tensor:
    """Float levels in [0, 255] -> uint8, rounded half to even (in place on `levels`). By way
    of int16: on a CPU the direct float-to-uint8 cast is a slow scalar loop; same result."""
    return levels.round_().to(torch.int16).to(torch.uint8)


def frozen(items: dict[str, Any]) -> Mapping[str, Any]:
    """A read-only mapping, for the parameter tables corruption classes share."""
    return MappingProxyType(dict(items))


def scaled(pixels: float, images: torch.Tensor) -> float:
    """A length given for a 224-pixel image, in pixels of `images`."""
    return pixels * images.shape[-1] / REFERENCE_SIDE


def uniforms(generators: list[torch.Generator], count: int, device: torch.device) -> torch.Tensor:
    """`count` uniform numbers in [0, 1) per image: float32 [B, count] on `device`, drawn on
    the CPU (the same on every device)."""
    draws = torch.stack([torch.rand(count, generator=g, dtype=torch.float64) for g in generators])
    return draws.to(device=device, dtype=torch.float32)


def noise_generators(
    generators: list[torch.Generator], device: torch.device
) -> list[torch.Generator]:
    """One generator per image on `device`, seeded by one draw of the image's CPU generator."""
    out = []
    for g in generators:
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        noise = torch.Generator(device=device)
        noise.manual_seed(seed)
        out.append(noise)
    return out


def normal_noise(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """Standard normal noise of `shape` per image, float32 [B, *shape] on `device`."""
    return _noise_rows(generators, shape, device, torch.Tensor.normal_)


def uniform_noise(
    generators: list[torch.Generator], shape: tuple[int, ...], device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) noise of `shape` per image, float32 [B, *shape] on `device`."""
    return _noise_rows(generators, shape, device, torch.Tensor.uniform_)


def _noise_rows(
    generators: list[torch.Generator],
    shape: tuple[int, ...],
    device: torch.device,
    draw: Callable[..., torch.Tensor],
) -> torch.Tensor:
    """One row per image, drawn in place by the image's own stream on `device` (no per-image
    tensor to stack)."""
    out = torch.empty((len(generators), *shape), device=device)
    for row, g in zip(out, noise_generators(generators, device), strict=True):
        draw(row, generator=g)
    return out


def masked_mean(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean of `values` [B, 1, H, W] inside each image's mask: [B, 1, 1, 1] (0 for an empty
    mask)."""
    weight = masks.to(values.dtype)
    total = (values * weight).sum(dim=(1, 2, 3), keepdim=True)
    return total / weight.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)


def masked_median(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The lower median of `values` inside each image's mask (torch's median, of the whole
    image when the mask is empty): [B, 1, 1, 1], without leaving the device."""
    flat = values.flatten(1)
    inside = masks.flatten(1)
    empty = ~inside.any(dim=1, keepdim=True)
    counted = inside | empty
    eight_bit = _eight_bit_median(flat, counted)
    if eight_bit is not None:
        return eight_bit.view(-1, 1, 1, 1)
    picked = torch.where(counted, flat, torch.full_like(flat, float("nan")))
    return picked.nanmedian(dim=1).values.view(-1, 1, 1, 1)


def _eight_bit_median(flat: torch.Tensor, counted: torch.Tensor) -> torch.Tensor | None:
    """The lower median by a 256-bin histogram, when every value is an 8-bit level k / 255 as
    the image store's images are (a corruption's input is, unless another came before it):
    exact, and several times cheaper than a selection. None when any value is not a level."""
    levels = flat * 255.0
    rounded = levels.round()
    if not bool(torch.equal(rounded, levels)):
        return None
    lowest, highest = torch.aminmax(rounded)
    if float(lowest) < 0 or float(highest) > 255:
        return None
    b = flat.shape[0]
    # one block of 256 bins per image, and one last bin that takes every pixel not counted
    # (cheaper than selecting the counted ones)
    offsets = 256 * torch.arange(b, device=flat.device).view(-1, 1)
    bins = torch.where(counted, rounded.to(torch.long) + offsets, 256 * b)
    counts = torch.bincount(bins.flatten(), minlength=256 * b + 1)[: 256 * b].view(b, 256)
    rank = (counts.sum(dim=1, keepdim=True) - 1) // 2  # the lower median's 0-based rank
    level = (counts.cumsum(dim=1) > rank).to(torch.int8).argmax(dim=1)
    # the same float the value has: an 8-bit level divided by 255 in the values' dtype
    return level.to(flat.dtype) / 255.0
