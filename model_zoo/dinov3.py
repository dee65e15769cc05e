"""DINOv3 ViT-S/16, ViT-B/16 and ViT-L/16, LVD-1689M weights (Siméoni et al., 2025).

The architecture is timm's `vit_{small,base,large}_patch16_dinov3` (Eva with DINOv3 RoPE:
base 100, coordinates normalised per side to [-1, 1], rotate-half layout, applied to patch tokens
only; CLS + 4 storage ("register") tokens; layer scale; LayerNorm eps 1e-5; no qkv bias). It
matches facebookresearch/dinov3's `DinoVisionTransformer` as `hub/backbones.py` builds these
three models, with two points checked when a file is loaded rather than assumed:

* qkv bias: the official blocks hold `attn.qkv.bias` times a `bias_mask` buffer (mask_k_bias).
  In the released S/B/L files the product is zero (bias and mask both zero), which is what timm's
  bias-free qkv computes; a file whose effective bias is not zero is another model and is refused
  (the layouts declare those tensors as zeros, so random test files keep them zero).
* RoPE periods: the official model uses the `rope_embed.periods` buffer stored in the file (timm
  recomputes them in float32); when a file holds them, the loaded model uses the file's values.

Input: 256 x 256, bilinear with antialias, ImageNet mean/std: the transform the DINOv3 README
prescribes for the LVD-1689M backbones (timm's pretrained config says the same size).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import timm
import torch
from torch import nn

from model_zoo.dinov2 import (
    DINO_POOLINGS,
    DinoViTAdapter,
    Rule,
    fuse_qkv,
    rename_keys,
)
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

DINOV3_CITATION = "Siméoni et al., DINOv3, arXiv:2508.10104, 2025"
DINOV3_DOWNLOADS = "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/"

_BLOCK_RULES: list[Rule] = [
    (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"blocks.\1.\2.\3"),
    (r"blocks\.(\d+)\.attn\.qkv\.weight", r"blocks.\1.attn.qkv.weight"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", r"norm.\1"),
]
# facebookresearch/dinov3 DinoVisionTransformer -> timm Eva.
OFFICIAL_RULES: list[Rule] = [
    ("cls_token", "cls_token"),
    ("storage_tokens", "reg_token"),
    (r"blocks\.(\d+)\.ls([12])\.gamma", r"blocks.\1.gamma_\2"),
    *_BLOCK_RULES,
]
# mask_token: pre-training only; periods: checked and applied apart (see the module docstring);
# qkv bias and its mask: checked to be zero in effect, then dropped.
OFFICIAL_DROPPED = (
    "mask_token",
    r"rope_embed\.periods",
    r"blocks\.\d+\.attn\.qkv\.bias",
    r"blocks\.\d+\.attn\.qkv\.bias_mask",
)
TIMM_RULES: list[Rule] = [
    ("cls_token", "cls_token"),
    ("reg_token", "reg_token"),
    (r"blocks\.(\d+)\.gamma_([12])", r"blocks.\1.gamma_\2"),
    *_BLOCK_RULES,
]
# Hugging Face transformers DINOv3ViTModel (the layout transformers 4.56 saved the hub files in).
HF_RULES: list[Rule] = [
    ("embeddings.cls_token", "cls_token"),
    ("embeddings.register_tokens", "reg_token"),
    (r"embeddings\.patch_embeddings\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"layer\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"blocks.\1.\2.\3"),
    (r"layer\.(\d+)\.attention\.([qkv])_proj\.weight", r"blocks.\1.attn.\2_part.weight"),
    (r"layer\.(\d+)\.attention\.o_proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"layer\.(\d+)\.layer_scale([12])\.lambda1", r"blocks.\1.gamma_\2"),
    (r"layer\.(\d+)\.mlp\.up_proj\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
    (r"layer\.(\d+)\.mlp\.down_proj\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
    (r"norm\.(weight|bias)", r"norm.\1"),
]
HF_DROPPED = ("embeddings.mask_token", r"layer\.\d+\.attention\.[qv]_proj\.bias")
# transformers 5 nests the blocks (DINOv3ViTModel.model = DINOv3ViTEncoder, its `.layer`): a file
# it saves names them `model.layer.N.*` (its conversion_mapping: "layer." -> "model.layer.");
# embeddings.* and norm.* stay where transformers 4.56 had them.
HF5_BLOCKS = "model.layer."


def from_transformers5(checkpoint: Mapping[str, Any]) -> dict:
    """transformers 5 key names -> the transformers 4.56 names HF_RULES read."""
    return {
        k.removeprefix("model.") if k.startswith(HF5_BLOCKS) else k: v
        for k, v in checkpoint.items()
    }


_OFFICIAL_BIAS = re.compile(r"(blocks\.\d+\.attn\.qkv)\.bias")
_HF_BIAS = re.compile(r"layer\.\d+\.attention\.[qv]_proj\.bias")


def _nonzero(tensor: torch.Tensor) -> bool:
    return tensor.device.type != "meta" and bool((tensor != 0).any())


def _refuse_bias(source: str, key: str) -> None:
    raise UserError(
        f"{source}: {key} is not zero in effect, but this adapter's DINOv3 architecture has no "
        "qkv bias (the released LVD-1689M S/B/L files have none); for a DINOv3 with qkv bias use "
        "timm:vit_<size>_patch16_dinov3_qkvb with --weights"
    )


def check_official_qkv_bias(state: Mapping[str, Any], source: str) -> None:
    """Refuse a file whose official blocks have a non-zero effective qkv bias (bias x mask)."""
    for key, bias in state.items():
        match = _OFFICIAL_BIAS.fullmatch(key)
        if not match:
            continue
        mask = state.get(f"{match[1]}.bias_mask")
        effective = bias if mask is None else bias * mask.to(bias.dtype)
        if _nonzero(effective):
            _refuse_bias(source, key)


def check_hf_qkv_bias(state: Mapping[str, Any], source: str) -> None:
    """Refuse a transformers file whose q or v projections have a non-zero bias."""
    for key, bias in state.items():
        if _HF_BIAS.fullmatch(key) and _nonzero(bias):
            _refuse_bias(source, key)


def dinov3_state(checkpoint: Mapping[str, Any], source: str) -> tuple[dict, torch.Tensor | None]:
    """The official `dinov3_*_pretrain_lvd1689m-*.pth`, timm's hub `model.safetensors` or the
    Hugging Face transformers `model.safetensors` (as transformers 4.56 or 5 saves it) -> (timm
    Eva state dict, the file's RoPE periods or None)."""
    if not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise UserError(
            f"{source}: expected a flat DINOv3 state dict (official .pth, timm's or transformers' "
            f"model.safetensors); top-level keys are {sorted(checkpoint)[:6]}"
        )
    if "storage_tokens" in checkpoint:
        check_official_qkv_bias(checkpoint, source)
        state = rename_keys(checkpoint, OFFICIAL_RULES, OFFICIAL_DROPPED, "DINOv3", source)
        return state, checkpoint.get("rope_embed.periods")
    if "embeddings.cls_token" in checkpoint:
        checkpoint = from_transformers5(checkpoint)
        check_hf_qkv_bias(checkpoint, source)
        state = rename_keys(checkpoint, HF_RULES, HF_DROPPED, "transformers DINOv3", source)
        return fuse_qkv(state, source), None
    return rename_keys(checkpoint, TIMM_RULES, (), "timm DINOv3", source), None


@dataclass(frozen=True)
class DinoV3Variant:
    arch: str  # "vits16", as in the official names
    timm_name: str
    embed_dim: int
    depth: int
    file_hash: str  # the suffix of the official file name

    @property
    def official_file(self) -> str:
        return f"dinov3_{self.arch}_pretrain_lvd1689m-{self.file_hash}.pth"

    @property
    def timm_hub_id(self) -> str:
        return f"timm/{self.timm_name}.lvd1689m"

    @property
    def hf_id(self) -> str:
        return f"facebook/dinov3-{self.arch}-pretrain-lvd1689m"


class DinoV3Adapter(DinoViTAdapter):
    """A DINOv3 LVD-1689M ViT, 256 px, poolings `cls+mean` (DINOv3's linear evaluation: CLS
    concatenated with the mean of patch tokens, the default), `cls` and `mean`.

    Patch tokens: the last block's output through the final LayerNorm without the CLS and the 4
    storage tokens (the official `x_norm_patchtokens`; the S/B/L models share one norm for CLS
    and patches, `untie_cls_and_patch_norms=False`), 16x16 at 256 px, width 384 / 768 / 1024.
    `mean` is their mean."""

    version = "1"
    poolings = DINO_POOLINGS
    patch_size = 16

    def __init__(self, name: str, variant: DinoV3Variant) -> None:
        super().__init__(name)
        self.variant = variant
        stem = f"dinov3-{variant.arch}"
        self.layouts = (f"{stem}-pretrain", f"{stem}-timm", f"{stem}-hf")
        self._file_periods: torch.Tensor | None = None

    @property
    def info(self) -> ModelInfo:
        v = self.variant
        width = {384: "S", 768: "B", 1024: "L"}[v.embed_dim]
        return ModelInfo(
            architecture=f"ViT-{width}/16 (DINOv3: RoPE, CLS + 4 storage tokens, layer scale), "
            f"256 px input, timm {v.timm_name}",
            pretraining_data="LVD-1689M (1.7B curated web images); DINOv3, distilled from the "
            "ViT-7B/16 teacher",
            weights_source=f"hf-hub:{v.timm_hub_id}; official {v.official_file} via the access "
            f"form at {DINOV3_DOWNLOADS}; hf-hub:{v.hf_id} (gated)",
            license="DINOv3 License (https://ai.meta.com/resources/models-and-libraries/"
            "dinov3-license/)",
            citation=DINOV3_CITATION,
            family="DINOv3",
            params=count_parameters(self.meta_model()),
            notes="Input 256x256, bilinear + antialias, ImageNet mean/std (the DINOv3 README's "
            "transform for LVD-1689M weights; the grayscale frame is resized whole). Default "
            "pooling cls+mean = [CLS, mean of patch tokens], as dinov3/eval/linear.py builds its "
            "linear input (last block, avgpool); storage tokens are never in the mean. The "
            "transformers layout was written from transformers 4.56's DINOv3ViTModel (blocks "
            "`layer.N.*`) and 5.x's (blocks `model.layer.N.*`), not checked against the gated "
            "hub file.",
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(256, 256), mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear"
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        width = self.variant.embed_dim
        return {"cls+mean": 2 * width, "cls": width, "mean": width}

    @property
    def token_dim(self) -> int:
        return self.variant.embed_dim

    def build_model(self) -> nn.Module:
        return timm.create_model(
            self.variant.timm_name,
            pretrained=False,
            num_classes=0,
            depth=self.depth or self.variant.depth,
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        state, periods = dinov3_state(checkpoint, source)
        # kept for _finish: the periods are not part of timm's state dict
        self._file_periods = periods
        return state

    def _finish(self, model: nn.Module, weights_id: str) -> None:
        periods, self._file_periods = self._file_periods, None
        if periods is not None and periods.device.type != "meta":
            rope = model.rope.periods
            if tuple(periods.shape) != tuple(rope.shape):
                raise UserError(
                    f"rope_embed.periods has shape {tuple(periods.shape)}, the model "
                    f"{tuple(rope.shape)}: not a {self.variant.arch} checkpoint"
                )
            rope.copy_(periods.to(rope.dtype))
        super()._finish(model, weights_id)

    def load_pretrained(self) -> tuple[nn.Module, str]:
        """timm's hub copy (the official files and the transformers copy need an access form)."""
        v = self.variant
        downloaded = download_hub_file(
            v.timm_hub_id,
            "model.safetensors",
            fix=f"pass --weights FILE: the official {v.official_file} (access form: "
            f"{DINOV3_DOWNLOADS}), timm's or {v.hf_id}'s model.safetensors",
        )
        model = self.model_from_file(downloaded.path, str(downloaded.path))
        return model, downloaded.weights_id


VARIANTS = {
    "dinov3-vits16": DinoV3Variant("vits16", "vit_small_patch16_dinov3", 384, 12, "08c60483"),
    "dinov3-vitb16": DinoV3Variant("vitb16", "vit_base_patch16_dinov3", 768, 12, "73cec8be"),
    "dinov3-vitl16": DinoV3Variant("vitl16", "vit_large_patch16_dinov3", 1024, 24, "8aa4cbdd"),
}
for _name, _variant in VARIANTS.items():
    register_model(_name)(partial(DinoV3Adapter, _name, _variant))
