"""Image corruptions, registered by name. Each works on a float [B, 1, H, W] batch in [0, 1] on
the device, with one random generator per image; the caller keeps the outside of the scan mask
unchanged. `presets` groups them into suites (`us-jepa-2026`, `ultrasound-5`)."""

from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.artefacts import Attenuation, Haze, Reverberation
from ultrabench_eval.corruptions.base import Corruption
from ultrabench_eval.corruptions.filters import Blur, UsJepaBlur
from ultrabench_eval.corruptions.intensity import (
    ContrastDepletion,
    Gain,
    GaussianNoise,
    UsJepaContrast,
)
from ultrabench_eval.corruptions.jpeg import JpegCompression
from ultrabench_eval.corruptions.presets import PRESETS, Preset, get_preset
from ultrabench_eval.corruptions.shadows import AcousticShadow, GaussianShadow
from ultrabench_eval.corruptions.speckle import Speckle, UsJepaSpeckle

BUILT_IN = (
    Speckle,
    AcousticShadow,
    GaussianShadow,
    Attenuation,
    Haze,
    Reverberation,
    Gain,
    GaussianNoise,
    Blur,
    ContrastDepletion,
    JpegCompression,
    UsJepaBlur,
    UsJepaContrast,
    UsJepaSpeckle,
)
for _cls in BUILT_IN:
    CORRUPTIONS.register(_cls.name, _cls())

__all__ = [
    "BUILT_IN",
    "PRESETS",
    "AcousticShadow",
    "Attenuation",
    "Blur",
    "ContrastDepletion",
    "Corruption",
    "Gain",
    "GaussianNoise",
    "GaussianShadow",
    "Haze",
    "JpegCompression",
    "Preset",
    "Reverberation",
    "Speckle",
    "UsJepaBlur",
    "UsJepaContrast",
    "UsJepaSpeckle",
    "get_preset",
]
