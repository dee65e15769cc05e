"""RadJEPA (Khan et al. 2026, arXiv 2601.15891): an I-JEPA ViT-B/14 trained on ~840k chest
X-rays with the facebookresearch/ijepa code. Weights: `jepa_encoder.pth.tar` on the Hugging Face
hub (AIDElab-IITBombay/RadJEPA), a torch file with the encoder under `encoder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from model_zoo.ijepa import VIT_B14, JepaViTAdapter
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import ModelInfo, count_parameters
from ultrabench_eval.models.downloads import download_hub_file

HUB_REPO = "AIDElab-IITBombay/RadJEPA"
HUB_FILE = "jepa_encoder.pth.tar"


@register_model("radjepa")
class RadJEPA(JepaViTAdapter):
    """RadJEPA ViT-B/14 encoder, 224 px, mean of patch tokens (no class token)."""

    vit = VIT_B14
    checkpoint_entry = "encoder"  # the only encoder the hub file is read for by its loaders
    model_label = "RadJEPA"
    layouts = ("radjepa-hf",)

    def __init__(self, name: str = "radjepa") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture=(
                "ViT-B/14 (768-d, 12 blocks, 12 heads), 224 px, no class token, fixed 2-D "
                "sin-cos positions (I-JEPA vit_base, patch 14) as timm VisionTransformer"
            ),
            pretraining_data=(
                "839,364 chest X-rays (MIMIC-CXR, CheXpert, NIH-CXR, PadChest, BRAX), images "
                "only, I-JEPA latent prediction"
            ),
            weights_source=f"hf-hub:{HUB_REPO}/{HUB_FILE} (entry 'encoder')",
            license="not stated in the model card or repository (unverified)",
            citation=(
                "Khan et al., RadJEPA: Radiology Encoder for Chest X-Rays via Joint Embedding "
                "Predictive Architecture, arXiv 2601.15891, 2026"
            ),
            family="RadJEPA",
            params=count_parameters(self.meta_model()),
            notes=(
                "Verified: ViT-B/14 at 224 px, 86M (README, paper abstract), trained with the "
                "I-JEPA code (README). From third-party loaders of the hub files, not the files "
                "themselves (unreachable here): the file name, the 'encoder' entry, timm key "
                "names without class token (pos_embed of 256 tokens). Unverified: whether "
                "'encoder' is the context or the EMA target encoder; the normalisation (ImageNet "
                "mean/std assumed, as I-JEPA's training transforms; one third-party wrapper uses "
                "0.5/0.5); the license. Pooling: mean of patch tokens (no class token exists)."
            ),
            extra={"checkpoint_entry": self.checkpoint_entry, "hub_repo": HUB_REPO},
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        # one third-party loader also finds the entry under 'state_dict'; accept that wrapping
        wrapped = checkpoint.get("state_dict")
        if self.checkpoint_entry not in checkpoint and isinstance(wrapped, Mapping):
            checkpoint = wrapped
        return super().convert_checkpoint(checkpoint, source)

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        downloaded = download_hub_file(HUB_REPO, HUB_FILE)
        return self.load_file(downloaded.path, downloaded.weights_id)
