"""RAD-DINO (Pérez-García et al., 2025): a DINOv2 ViT-B/14 trained on chest X-rays, published as
`microsoft/rad-dino` in Hugging Face transformers' Dinov2Model format.

The HF Dinov2 keys are mapped explicitly onto the DINOv2 ViT of `model_zoo.dinov2` (timm
VisionTransformer; query/key/value concatenated into timm's fused qkv). The repository's
`backbone_compatible.safetensors`, the same weights in facebookresearch/dinov2's layout, is
accepted too.

Input: 518 x 518 (the processor's shortest_edge 518 + centre crop 518; the frame is resized whole
here), bicubic, mean 0.5307 / std 0.2583 on every channel (MIMIC-CXR statistics). At 518 px the
37x37 position embedding is used as trained, so no resampling convention comes into play.
Default pooling: the CLS token after the final LayerNorm, transformers' `pooler_output`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from model_zoo.dinov2 import (
    DinoViTAdapter,
    Rule,
    build_dinov2_vit,
    fuse_qkv,
    official_dinov2_state,
    rename_keys,
)
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import (
    InputSpec,
    ModelInfo,
    count_parameters,
)
from ultrabench_eval.models.downloads import download_hub_file

HUB_ID = "microsoft/rad-dino"
# preprocessor_config.json of microsoft/rad-dino (BitImageProcessor: resample 3 = bicubic).
RAD_DINO_MEAN = (0.5307, 0.5307, 0.5307)
RAD_DINO_STD = (0.2583, 0.2583, 0.2583)

# transformers Dinov2Model -> DinoV2ViT (timm names).
HF_DINOV2_RULES: list[Rule] = [
    ("embeddings.cls_token", "cls_token"),
    ("embeddings.position_embeddings", "pos_embed"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"encoder\.layer\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"blocks.\1.\2.\3"),
    (
        r"encoder\.layer\.(\d+)\.attention\.attention\.query\.(weight|bias)",
        r"blocks.\1.attn.q_part.\2",
    ),
    (
        r"encoder\.layer\.(\d+)\.attention\.attention\.key\.(weight|bias)",
        r"blocks.\1.attn.k_part.\2",
    ),
    (
        r"encoder\.layer\.(\d+)\.attention\.attention\.value\.(weight|bias)",
        r"blocks.\1.attn.v_part.\2",
    ),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1", r"blocks.\1.ls\2.gamma"),
    (r"encoder\.layer\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"layernorm\.(weight|bias)", r"norm.\1"),
]
HF_DINOV2_DROPPED = ("embeddings.mask_token",)  # iBOT masking, pre-training only


def hf_dinov2_state(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A transformers Dinov2Model state dict -> DinoV2ViT's."""
    renamed = rename_keys(state, HF_DINOV2_RULES, HF_DINOV2_DROPPED, "transformers Dinov2", source)
    return fuse_qkv(renamed, source)


def rad_dino_state(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`model.safetensors` (transformers) or `backbone_compatible.safetensors` (dinov2)."""
    if not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise UserError(
            f"{source}: expected a flat state dict (microsoft/rad-dino model.safetensors or "
            f"backbone_compatible.safetensors); top-level keys are {sorted(checkpoint)[:6]}"
        )
    if "embeddings.cls_token" in checkpoint:
        return hf_dinov2_state(checkpoint, source)
    return official_dinov2_state(checkpoint, source)


@register_model("rad-dino")
class RadDino(DinoViTAdapter):
    """RAD-DINO ViT-B/14, 518 px, MIMIC-CXR normalisation; poolings `cls` (pooler_output, the
    default), `mean` (patch tokens) and `cls+mean`.

    Patch tokens: the last block's output through the final LayerNorm without the CLS token
    (transformers' `last_hidden_state[:, 1:]`, the patch tokens the model card reshapes to a
    37x37 map), 37x37 at 518 px, width 768. `mean` is their mean."""

    version = "1"
    poolings = ("cls", "cls+mean", "mean")
    layouts = ("rad-dino-hf", "rad-dino-backbone")
    width = 768
    patch_size = 14

    def __init__(self, name: str = "rad-dino") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="ViT-B/14 (DINOv2 architecture, layer scale), 518 px input, timm "
            "VisionTransformer",
            pretraining_data="882,775 chest X-rays (MIMIC-CXR, CheXpert, NIH-CXR, PadChest, BRAX); "
            "DINOv2 training initialised from dinov2-base",
            weights_source=f"hf-hub:{HUB_ID} (model.safetensors; backbone_compatible.safetensors)",
            license="MIT (the model card's licence; earlier revisions said MSRLA)",
            citation="Pérez-García et al., Exploring scalable medical image encoders beyond text "
            "supervision, Nature Machine Intelligence 2025",
            family="DINOv2",
            params=count_parameters(self.meta_model()),
            notes="Input 518x518 bicubic (the processor resizes the short side to 518 and centre-"
            "crops 518; here the frame is resized whole), mean 0.5307 / std 0.2583 per channel: "
            "the values of microsoft/rad-dino's preprocessor_config.json as several public copies "
            "quote them (the hub file itself was not readable here). Default pooling cls = "
            "pooler_output (the model card: classifiers on the CLS token).",
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(518, 518), mean=RAD_DINO_MEAN, std=RAD_DINO_STD, interpolation="bicubic"
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        return {"cls+mean": 2 * self.width, "cls": self.width, "mean": self.width}

    @property
    def token_dim(self) -> int:
        return self.width

    def build_model(self) -> nn.Module:
        # Resampling arguments as dinov2_vitb14's; unused at the native 518 px grid.
        return build_dinov2_vit(
            embed_dim=self.width,
            depth=self.depth or 12,
            num_heads=12,
            registers=0,
            interpolate_offset=0.1,
            interpolate_antialias=False,
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return rad_dino_state(checkpoint, source)

    def load_pretrained(self) -> tuple[nn.Module, str]:
        downloaded = download_hub_file(
            HUB_ID,
            "model.safetensors",
            fix="pass its model.safetensors or backbone_compatible.safetensors with --weights FILE",
        )
        model = self.model_from_file(downloaded.path, str(downloaded.path))
        return model, downloaded.weights_id
