"""US-JEPA and USrc-JEPA (Radhachandran et al. 2026, arXiv 2602.19322): ViT-B/16 student
encoders trained from scratch with SALT, predicting the latents of a frozen URFM teacher.

No code or weights are public, so the adapters load a local file only (`--weights`), in one of
two layouts:
- the I-JEPA training-checkpoint layout the paper's code builds on (`encoder`, `predictor`,
  `target_encoder`, ... with `module.` prefixes): the evaluated encoder is the STUDENT,
  `encoder`. Under SALT the target slot holds the frozen teacher, which is not the model being
  benchmarked (unlike I-JEPA, where the EMA `target_encoder` is);
- a flat state dict of the student in timm's ViT key layout.

Architecture: I-JEPA's `vit_base(patch_size=16)`: no class token (I-JEPA encoders have none,
and the SALT student predicts patch latents only), fixed sin-cos positions, 12 heads; features
are the mean of the final-LayerNorm patch tokens.
"""

from __future__ import annotations

from model_zoo.ijepa import VIT_B16, JepaViTAdapter
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import ModelInfo, count_parameters

US_JEPA_CITATION = (
    "Radhachandran et al., US-JEPA: A Joint Embedding Predictive Architecture for Medical "
    "Ultrasound, arXiv 2602.19322, 2026"
)
_NOT_PUBLIC = (
    "not public: no code or weights released with arXiv 2602.19322 (none found in searches of "
    "GitHub, the Hugging Face hub and the paper's pages; the hub's paper page lists one citing "
    "model, not identified); pass the student checkpoint with --weights"
)
_NOTES = (
    "Evaluated encoder: the student ('encoder' of an I-JEPA-style training checkpoint; the "
    "'target_encoder' slot, the frozen teacher under SALT, and the predictor are ignored). "
    "Unverified (paper does not state, code not released): whether the student takes 3 "
    "channels (assumed, as I-JEPA's patch embedding; grayscale repeated) and the input "
    "normalisation (assumed ImageNet mean/std, as I-JEPA's src/transforms.py); the percentile "
    "rescaling inside the scan mask used in pretraining is not applied here. Pooling: mean of "
    "patch tokens (no class token exists); the paper does not state its probe's pooling."
)


class _USJepaStudent(JepaViTAdapter):
    vit = VIT_B16
    checkpoint_entry = "encoder"  # the student, not the teacher in 'target_encoder'
    model_label = "US-JEPA"
    layouts = ("us-jepa-train", "us-jepa-timm")
    pretraining: str = ""

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture=(
                "ViT-B/16 (768-d, 12 blocks, 12 heads), 224 px, no class token, fixed 2-D "
                "sin-cos positions (I-JEPA vit_base); SALT student of a frozen URFM ViT-B/16 "
                "teacher; predictor depth 12, width 384"
            ),
            pretraining_data=self.pretraining,
            weights_source=_NOT_PUBLIC,
            license="unknown (not released)",
            citation=US_JEPA_CITATION,
            family="US-JEPA",
            params=count_parameters(self.meta_model()),
            notes=_NOTES,
            extra={"checkpoint_entry": self.checkpoint_entry},
        )


@register_model("us-jepa")
class USJepa(_USJepaStudent):
    """US-JEPA student encoder."""

    pretraining = (
        "ultrasound images from several datasets (sampling capped at 50k per dataset), "
        "greyscale, 100 epochs, SALT with a frozen URFM teacher, random context/target blocks"
    )

    def __init__(self, name: str = "us-jepa") -> None:
        super().__init__(name)


@register_model("usrc-jepa")
class USrcJepa(_USJepaStudent):
    """USrc-JEPA: US-JEPA with context and target blocks sampled inside the scan region."""

    pretraining = (
        "as US-JEPA (ultrasound, SALT, frozen URFM teacher, 100 epochs), with context/target "
        "blocks constrained to the ultrasound region (USrc) mask"
    )

    def __init__(self, name: str = "usrc-jepa") -> None:
        super().__init__(name)
