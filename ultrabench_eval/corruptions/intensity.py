"""Corruptions of intensity alone."""

from __future__ import annotations

import torch

from ultrabench_eval.corruptions.base import Corruption


class GaussianNoise(Corruption):
    """Additive white Gaussian noise; severity sets its standard deviation (intensity units)."""

    name = "gaussian-noise"
    description = "additive Gaussian noise, sigma 0.02 / 0.04 / 0.06 / 0.08 / 0.10"
    levels = (0.02, 0.04, 0.06, 0.08, 0.10)

    def apply(self, images, masks, severity, generators):
        sigma = self.parameter(severity)
        noise = torch.stack(
            [torch.randn(images.shape[1:], generator=g, device=images.device) for g in generators]
        )
        return images + sigma * noise


class ContrastDepletion(Corruption):
    """I' = m + alpha (I - m), with m the median intensity inside the scan mask."""

    name = "contrast"
    description = "contrast depleted about the in-mask median, alpha 0.8 / 0.7 / 0.5 / 0.3 / 0.2"
    levels = (0.8, 0.7, 0.5, 0.3, 0.2)

    def apply(self, images, masks, severity, generators):
        alpha = self.parameter(severity)
        medians = torch.stack(
            [
                img[m].median() if m.any() else img.median()
                for img, m in zip(images, masks, strict=True)
            ]
        ).view(-1, 1, 1, 1)
        return medians + alpha * (images - medians)
