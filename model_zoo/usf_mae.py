"""USF-MAE (Megahed et al., 2026): an MAE ViT-B/16 pre-trained on 370k ultrasound images.

The official code (Yusufii9/USF-MAE) continues Facebook's MAE `mae_vit_base_patch16_dec512d8b`
from `mae_pretrain_vit_base_full.pth` on OpenUS-46 and saves `model.state_dict()` of the whole
MAE, decoder included (USF-MAE_pretraining.ipynb). The encoder is timm's ViT-B/16 under the same
key names, so the checkpoint maps onto `vit_base_patch16_224` once the decoder is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from model_zoo.mae import mae_encoder_state
from model_zoo.timm_models import TimmAdapter
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointAdapter,
    InputSpec,
    ModelInfo,
    count_parameters,
)

WEIGHTS_100_EPOCHS = "https://drive.google.com/file/d/1ZPu_7KhMEuaq-XdLhVp2EEgMgLJ4dKhr/view"
WEIGHTS_500_EPOCHS = "https://drive.google.com/file/d/15n71qHXSBjEjrLtCOzvBb6gTsGhh7NUg/view"


@register_model("usf-mae")
class USFMAE(TimmAdapter):
    """USF-MAE ViT-B/16 encoder, 224 px, CLS token (MAE's linear-probe pooling) and mean of
    patch tokens, both after the encoder's final LayerNorm. Loads the plain `state_dict()` the
    official notebook saves (decoder dropped), or the same weights wrapped as `{'model': ...}` by
    Facebook's MAE `main_pretrain.py`, which the README points to for pre-training."""

    layouts = ("usf-mae-vitb16", "usf-mae-vitb16-mae-train")

    def __init__(self, name: str = "usf-mae") -> None:
        super().__init__(name, model_name="vit_base_patch16_224")

    def model_kwargs(self) -> dict[str, Any]:
        # Encoder only: no classifier, CLS token as the model's own pooling (as in MAE).
        return {**super().model_kwargs(), "num_classes": 0, "global_pool": "token"}

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="ViT-B/16 MAE encoder, 224 px, 12 blocks, 768-d (timm "
            "vit_base_patch16_224; decoder of mae_vit_base_patch16_dec512d8b dropped)",
            pretraining_data="OpenUS-46 public ultrasound datasets (README: ~360k 2D/3D images "
            "from 43 of them, 3 held out), MAE pixel reconstruction continued from the ImageNet "
            "MAE with decoder",
            weights_source="not on a hub: Google Drive, 100-epoch checkpoint (recommended) "
            f"{WEIGHTS_100_EPOCHS} or 500-epoch checkpoint {WEIGHTS_500_EPOCHS}",
            license="MIT (Yusufii9/USF-MAE LICENSE; no other terms are given for the weights)",
            citation="Megahed et al., USF-MAE: Ultrasound Self-Supervised Foundation Model with "
            "Masked Autoencoding, Biomedical Signal Processing and Control 122:110313, 2026 "
            "(arXiv:2510.22990)",
            family="MAE",
            params=count_parameters(self.meta_model()),
            notes="Preprocessing from US_data_loading.py: RGB, Resize((224, 224), NEAREST) on a "
            "PIL image, ImageNet mean/std; resized here with torch's 'nearest-exact', which takes "
            "PIL's source pixel floor((i+0.5)*s) (torch's 'nearest' takes floor(i*s)). Which "
            "checkpoint "
            "(100 or 500 epochs) a paper used is not stated. The paper fine-tunes the whole "
            "encoder; the default CLS pooling follows MAE's linear probe, not a documented "
            "USF-MAE choice.",
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(224, 224),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            channels=3,
            # PIL's NEAREST, as the official transform resizes PIL images (torch's "nearest"
            # picks other source pixels: 98 % of them differ on a 600 -> 224 resize)
            interpolation="nearest-exact",
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return mae_encoder_state(checkpoint, source)

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        # Google Drive only: tell the user where to get the file (TimmAdapter would try timm).
        return CheckpointAdapter.load_pretrained(self)
