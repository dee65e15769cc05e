"""Corruptions of intensity alone: additive noise, contrast depletion, over- and under-gain."""

from __future__ import annotations

from ultrabench_eval.corruptions.base import (
    Corruption,
    frozen,
    masked_median,
    normal_noise,
    uniforms,
)


class GaussianNoise(Corruption):
    """Additive white Gaussian noise (electronic noise), one independent draw per pixel."""

    name = "gaussian-noise"
    description = "additive white Gaussian noise"
    table = frozen({"sigma": (0.025, 0.05, 0.08, 0.12, 0.17)})
    primary = "sigma"
    units = frozen({"sigma": "standard deviation, intensity units (image in [0, 1])"})

    def apply(self, images, masks, severity, generators):
        noise = normal_noise(generators, tuple(images.shape[1:]), images.device)
        return noise.mul_(self.parameter(severity)).add_(images)


class ContrastDepletion(Corruption):
    """I' = m + alpha (I - m), with m the median intensity inside the scan mask."""

    name = "contrast"
    description = "contrast depleted about the in-mask median: I' = m + alpha (I - m)"
    table = frozen({"alpha": (0.8, 0.65, 0.5, 0.35, 0.2)})
    primary = "alpha"
    units = frozen({"alpha": "contrast kept (1: unchanged)"})

    def apply(self, images, masks, severity, generators):
        alpha = self.parameter(severity)
        medians = masked_median(images, masks)
        return medians + alpha * (images - medians)


class UsJepaContrast(ContrastDepletion):
    """The US-JEPA paper's contrast depletion: alpha 0.7 / 0.5 / 0.3."""

    name = "us-jepa-contrast"
    description = "US-JEPA (2026) contrast depletion about the in-mask median, alpha 0.7/0.5/0.3"
    table = frozen({"alpha": (0.7, 0.5, 0.3)})


class Gain(Corruption):
    """Over- or under-gain: the display shifted up (washed out, highlights saturate) or down
    (dark, low echoes lost), as a wrong overall gain does to a log-compressed B-mode image.
    Each image is over- or under-gained with equal chance."""

    name = "gain"
    description = "overall gain off by a fixed shift of the log-compressed display, up or down"
    table = frozen({"shift": (0.05, 0.1, 0.15, 0.2, 0.28)})
    primary = "shift"
    units = frozen(
        {
            "shift": "intensity added (over-gain) or removed (under-gain); 0.1 is 6 dB of a "
            "60 dB display"
        }
    )

    def apply(self, images, masks, severity, generators):
        draws = uniforms(generators, 1, images.device)
        sign = (draws[:, 0] < 0.5).to(images.dtype) * 2.0 - 1.0
        return images + self.parameter(severity) * sign.view(-1, 1, 1, 1)
