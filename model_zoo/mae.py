"""MAE ViT-B/16 (He et al., 2022): the pixel-reconstruction control."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from model_zoo.timm_models import TimmAdapter
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import ModelInfo, count_parameters
from ultrabench_eval.models.weights import strip_prefixes

# Pre-training checkpoints hold the decoder too; the encoder is what is benchmarked.
_DECODER = re.compile(r"^(decoder_|mask_token$)")


def mae_encoder_state(checkpoint: Mapping[str, Any], source: str) -> dict:
    """The encoder of an MAE checkpoint: {'model': ...} as main_pretrain.py and the released
    files store it, or a flat state dict (timm's hub layout); decoder keys dropped."""
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, Mapping) or "patch_embed.proj.weight" not in strip_prefixes(
        state, ("module.",)
    ):
        raise UserError(
            f"{source} is not an MAE checkpoint: expected {{'model': state_dict}} or a flat "
            "state dict with patch_embed.proj.weight"
        )
    state = strip_prefixes(state, ("module.",))
    return {k: v for k, v in state.items() if not _DECODER.match(k)}


@register_model("mae-vitb16")
class MAEViTB16(TimmAdapter):
    """MAE ViT-B/16 encoder, ImageNet-1k pre-training, 224 px, CLS token (MAE's linear probe)
    and mean of patch tokens. Loads the released `mae_pretrain_vit_base.pth`, a pre-training
    checkpoint with its decoder, or timm's hub copy."""

    layouts = ("mae-vitb16-pretrain", "mae-vitb16-train", "mae-vitb16-timm")

    def __init__(self, name: str = "mae-vitb16") -> None:
        super().__init__(name, model_name="vit_base_patch16_224.mae")

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="ViT-B/16, 224 px, 86M encoder (timm vit_base_patch16_224)",
            pretraining_data="ImageNet-1k, masked-pixel reconstruction (75 % masking), 1600 ep",
            weights_source="hf-hub:timm/vit_base_patch16_224.mae; "
            "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth",
            license="CC-BY-NC-4.0",
            citation="He et al., Masked Autoencoders Are Scalable Vision Learners, CVPR 2022",
            family="MAE",
            params=count_parameters(self.meta_model()),
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return mae_encoder_state(checkpoint, source)
