"""USFM (Jiao et al., 2024): a BEiT-style ViT-B/16 pre-trained by spatial and frequency-domain
masked image modelling on about two million ultrasound images.

`USFM_latest.pth` is a flat state dict of the pre-training encoder: BEiT blocks (q_bias/v_bias,
layer scale gamma_1/gamma_2), no absolute position embedding, one relative position bias shared
by all blocks (`rel_pos_bias.*`), a final `norm`, plus the MIM `mask_token`. These are exactly
timm's `Beit` names with `use_shared_rel_pos_bias=True`, so the file maps one to one onto it.

For classification the official code (openmedlab/USFM, usdsgen) builds the same encoder with
`use_mean_pooling=True`: it copies the shared bias into every block (same function), replaces
`norm` by identity and pools `fc_norm(mean of patch tokens)` with a freshly initialised
`fc_norm`. The default `mean` pooling reproduces that: the patch-token mean of the last block's
output, layer-normalised without affine parameters (fc_norm at its initialisation).

Patch tokens: the last block's 196 patch tokens (CLS dropped) through the pre-trained final
`norm` (the norm the `cls` pooling uses), 768-d on the 14 x 14 grid at 224 px. No pooling is
their mean: `mean` normalises the mean of the un-normed tokens (fc_norm), so `mean_of_tokens`
is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from timm.models.beit import Beit

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointAdapter,
    InputSpec,
    ModelInfo,
    PatchTokens,
    count_parameters,
    grid_tokens,
)

WEIGHTS_URL = "https://drive.google.com/file/d/1KRwXZgYterH895Z8EpXpR1L1eSMMJo4q/view"
SHARED_BIAS = "rel_pos_bias.relative_position_bias_table"
# In the file but not weights of the encoder: the MIM mask token, and the relative position
# index, a constant that timm recomputes (same BEiT construction) and does not store.
DROPPED = ("mask_token", "rel_pos_bias.relative_position_index")
EMBED_DIM = 768
IMG_SIZE = 224
PATCH_SIZE = 16
LN_EPS = 1e-6  # usdsgen build_vit: partial(nn.LayerNorm, eps=1e-6)


def block_tokens(model: Beit, x: torch.Tensor) -> torch.Tensor:
    """Token sequence after the last block, before the final norm ([B, 1 + N, D])."""
    x = model.patch_embed(x)
    x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
    bias = model.rel_pos_bias() if model.rel_pos_bias is not None else None
    for block in model.blocks:
        x = block(x, shared_rel_pos_bias=bias)
    return x


def usfm_poolings(model: Beit, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """`mean`: USFM's classification pooling, layer_norm(mean of patch tokens) with fc_norm at
    its initialisation (weight 1, bias 0); `cls`: the CLS token after the pre-trained `norm`."""
    tokens = block_tokens(model, x)
    mean = F.layer_norm(tokens[:, 1:].mean(dim=1), (tokens.shape[-1],), eps=LN_EPS)
    return {"mean": mean, "cls": model.norm(tokens)[:, 0]}


@register_model("usfm")
class USFM(CheckpointAdapter):
    """USFM BEiT ViT-B/16 encoder, 224 px. Poolings: `mean` (default; what USFM's classifier
    uses) and `cls`. Loads the released `USFM_latest.pth` (Google Drive)."""

    layouts = ("usfm-vitb16",)
    poolings = ("mean", "cls")
    # `mean` is layer_norm(mean of the un-normed patch tokens), not the mean of the tokens
    mean_of_tokens: ClassVar[str | None] = None

    def __init__(self, name: str = "usfm") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="BEiT ViT-B/16, 224 px, 12 blocks, 768-d, relative position bias "
            "shared across blocks, layer scale (init 0.1), no absolute position embedding "
            "(timm Beit)",
            pretraining_data="about 2M ultrasound images (multi-organ, multi-centre, "
            "multi-device), masked image modelling with spatial and frequency-domain masks",
            weights_source=f"not on a hub: Google Drive USFM_latest.pth {WEIGHTS_URL}",
            license="CC-BY-NC-4.0 (openmedlab/USFM README)",
            citation="Jiao et al., USFM: A universal ultrasound foundation model generalized to "
            "tasks and organs towards label efficient image analysis, Medical Image Analysis "
            "96:103202, 2024",
            family="BEiT",
            params=count_parameters(self.meta_model()),
            notes="Key layout from openmedlab/USFM@960a1e1 (remap_pretrained_keys_vit reads the "
            "flat file's rel_pos_bias.relative_position_bias_table) and a third-party check of "
            "the released file (every timm Beit key present; extra: mask_token and the "
            "relative position index). Preprocessing: usdsgen build_cls_dataset, RGB, "
            "Resize((224, 224), bicubic), ImageNet mean/std. The third-party transformers port "
            "(Larxel/USFM) is not accepted: its configuration and key layout are undocumented "
            "here.",
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

    @property
    def embed_dims(self) -> dict[str, int]:
        return dict.fromkeys(self.poolings, EMBED_DIM)

    @property
    def token_dim(self) -> int:
        return EMBED_DIM

    @property
    def token_grid(self) -> tuple[int, int]:
        return (IMG_SIZE // PATCH_SIZE, IMG_SIZE // PATCH_SIZE)

    def build_model(self) -> torch.nn.Module:
        return Beit(
            img_size=IMG_SIZE,
            patch_size=PATCH_SIZE,
            embed_dim=EMBED_DIM,
            depth=self.depth or 12,
            num_heads=12,
            mlp_ratio=4.0,
            qkv_bias=True,
            init_values=0.1,
            use_abs_pos_emb=False,
            use_rel_pos_bias=False,
            use_shared_rel_pos_bias=True,
            num_classes=0,
            global_pool="token",  # keeps the pre-trained final `norm` (the `cls` pooling)
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        if SHARED_BIAS not in checkpoint:
            raise UserError(
                f"{source} is not USFM_latest.pth: expected a flat BEiT state dict with the "
                f"shared relative position bias '{SHARED_BIAS}'; top-level keys are "
                f"{sorted(map(str, checkpoint))[:8]}"
            )
        return {k: v for k, v in checkpoint.items() if k not in DROPPED}

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.model is not None, "load() first"
        return usfm_poolings(self.model, x)

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        """Patch tokens of the last block through the pre-trained final `norm`, CLS dropped."""
        assert self.model is not None, "load() first"
        tokens = self.model.norm(block_tokens(self.model, x))
        return grid_tokens(tokens, 1, self.model.patch_embed.grid_size)
