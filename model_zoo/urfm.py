"""URFM (Kang et al., 2025): an MAE-style ViT-B/16 pre-trained by masked image modelling with
BiomedCLIP representations as targets, on over 1M ultrasound images from 15 organs.

The code repository (sonovision-ai/URFM) could not be read here. What is known of the released
file `mae_vit_base_patch16_dec768d8b_all_biomedclip_1199.pth` (HF QingboKang/URFM) comes from
two independent users: it is a dict whose `ema_state_dict` holds the MAE-named encoder (timm ViT
keys) plus a decoder (`decoder_*`, `mask_token`), and whose `model` entry is a string. One of them
(wujia-xyz/IADA-Net) loads the ViT-L/16 sibling strictly into timm's ViT after stripping an
optional `module.` prefix and the decoder, which fixes the encoder's key names and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from model_zoo.mae import mae_encoder_state
from model_zoo.timm_models import TimmAdapter
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputSpec,
    ModelInfo,
    count_parameters,
)
from ultrabench_eval.models.downloads import download_hub_file

HUB_REPO = "QingboKang/URFM"
FILE_VITB16 = "mae_vit_base_patch16_dec768d8b_all_biomedclip_1199.pth"
FILE_VITL16 = "mae_vit_large_patch16_dec768d8b_all_biomedclip_1199.pth"
EMA_KEY = "ema_state_dict"


def urfm_encoder_state(checkpoint: Mapping[str, Any], source: str) -> dict:
    """The encoder of a URFM checkpoint: the EMA weights (`ema_state_dict`) when present, as
    both known loaders prefer, else an MAE-style `model` state dict; decoder keys dropped."""
    ema = checkpoint.get(EMA_KEY)
    if isinstance(ema, Mapping) and ema:
        return mae_encoder_state(ema, f"{source} ({EMA_KEY})")
    model = checkpoint.get("model")
    flat = bool(checkpoint) and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
    if isinstance(model, Mapping) or flat:
        return mae_encoder_state(checkpoint, source)
    raise UserError(
        f"{source} is not a URFM checkpoint: expected an '{EMA_KEY}' state dict (or an MAE "
        f"'model' state dict); top-level keys are {sorted(map(str, checkpoint))[:8]}"
    )


@register_model("urfm")
class URFM(TimmAdapter):
    """URFM ViT-B/16 encoder (EMA weights), 224 px, CLS token and mean of patch tokens after the
    final LayerNorm; downloaded from the Hugging Face hub."""

    layouts = ("urfm-vitb16", "urfm-vitb16-ema-ddp", "urfm-vitb16-train")
    hub_file = FILE_VITB16
    timm_name = "vit_base_patch16_224"
    architecture = (
        "ViT-B/16 encoder, 224 px, 12 blocks, 768-d (timm vit_base_patch16_224; the 8-block "
        "768-d decoder of mae_vit_base_patch16_dec768d8b is dropped)"
    )

    def __init__(self, name: str = "urfm") -> None:
        super().__init__(name, model_name=self.timm_name)

    def model_kwargs(self) -> dict[str, Any]:
        return {**super().model_kwargs(), "num_classes": 0, "global_pool": "token"}

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture=self.architecture,
            pretraining_data="over 1M ultrasound images, 15 organs; masked image modelling with "
            "BiomedCLIP features as targets; EMA weights of the checkpoint named for epoch 1199",
            weights_source=f"hf-hub:{HUB_REPO}/{self.hub_file}",
            license="unverified: the code repository could not be read and the model card's "
            "licence was not seen",
            citation="Kang et al., URFM: A general Ultrasound Representation Foundation Model for "
            "advancing ultrasound image diagnosis, iScience 2025, doi:10.1016/j.isci.2025.112917",
            family="MAE",
            params=count_parameters(self.meta_model()),
            notes="UNVERIFIED against the authors' code (sonovision-ai/URFM unreadable here). The "
            "layout (ema_state_dict preferred, optional 'module.' prefix, decoder_*/mask_token "
            "dropped, 'model' holding a string) comes from two third-party loaders; the "
            "decoder's output width and LayerNorm eps 1e-6 are assumed from MAE's code. "
            "Mean/std: ImageNet, as both third-party users feed it and as the MAE code base the "
            "file name comes from uses; no evidence was found that URFM normalises with "
            "BiomedCLIP's CLIP statistics (0.4815, 0.4578, 0.4082 / 0.2686, 0.2613, 0.2758), "
            "which remains possible. Default CLS pooling follows MAE's linear probe.",
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(224, 224),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            channels=3,
            interpolation="bicubic",
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return urfm_encoder_state(checkpoint, source)

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        downloaded = download_hub_file(HUB_REPO, self.hub_file)
        model = self.model_from_file(downloaded.path, f"{HUB_REPO}/{self.hub_file}")
        return model, downloaded.weights_id


@register_model("urfm-vitl16")
class URFMLarge(URFM):
    """URFM ViT-L/16 encoder (EMA weights), the larger sibling on the same hub repository; the
    file name and its EMA layout are confirmed by IADA-Net, which loads it strictly."""

    layouts = ("urfm-vitl16",)
    hub_file = FILE_VITL16
    timm_name = "vit_large_patch16_224"
    architecture = (
        "ViT-L/16 encoder, 224 px, 24 blocks, 1024-d (timm vit_large_patch16_224; the 8-block "
        "768-d decoder of mae_vit_large_patch16_dec768d8b is dropped)"
    )

    def __init__(self, name: str = "urfm-vitl16") -> None:
        super().__init__(name)
