"""Image corruptions, registered by name. Each works on a float [B, 1, H, W] batch in [0, 1] on
the device, with one random generator per image; the caller keeps the outside of the scan
mask unchanged."""

from ultrabench_eval.corruptions.base import Corruption
from ultrabench_eval.corruptions.intensity import ContrastDepletion, GaussianNoise
from ultrabench_eval.registry import CORRUPTIONS

CORRUPTIONS.register("gaussian-noise", GaussianNoise())
CORRUPTIONS.register("contrast", ContrastDepletion())

__all__ = ["ContrastDepletion", "Corruption", "GaussianNoise"]
