"""Segment Anything ViT-B image encoder (Kirillov et al., 2023), on timm's `samvit`.

Shared by the SAM family (`ultrasam` reuses the architecture and the mmpretrain key mapping;
`samus` reuses the reduced-depth plan and the poolings):

- the reduced-depth plan: SAM ViT-B attends globally only in blocks 2, 5, 8 and 11; a reduced
  variant keeps the first `depth - 1` windowed blocks and the first global block (block 2), so
  that even a depth-2 test model runs both attention kinds with their own relative-position
  tables;
- the three key layouts of the same weights: the official `sam_vit_b_01ec64.pth`, timm's hub
  copy, and OpenMMLab's `ViTSAM` conversion (the naming UltraSam's checkpoint uses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import timm
import torch
from torch import nn

from model_zoo.timm_models import TimmAdapter
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InputSpec,
    ModelInfo,
    PatchTokens,
    count_parameters,
    map_tokens,
    patch_grid,
)
from ultrabench_eval.models.layouts import CheckpointLayout

SAM_DEPTH = 12
SAM_GLOBAL_BLOCKS = (2, 5, 8, 11)  # build_sam_vit_b's encoder_global_attn_indexes
SAM_INPUT = 1024
SAM_PATCH = 16  # patch_embed: 16x16 conv, stride 16 (1024 px -> 64 x 64 tokens)
# Reduced (test) variants run at this input: one 1024-px image through a depth-2 model with one
# global block takes ~5 s and a batch of 8 ~14 GB on a CPU. timm resamples the 64x64 absolute
# position table and SAM's get_rel_pos interpolates the global relative-position tables, so the
# full-size weights still load unchanged; full-size models always run at 1024.
REDUCED_INPUT = 256
NECK_WIDTH = 256
SAM_CITATION = "Kirillov et al., Segment Anything, ICCV 2023"
# Poolings of the SAM family: the neck output averaged over the token grid (256-d, the image
# embedding SAM's decoder reads) and the last block's tokens averaged before the neck (768-d).
NECK_MEAN = "mean"
PRENECK_MEAN = "preneck-mean"


# --- reduced-depth plan ---------------------------------------------------------------------------
def kept_blocks(
    depth: int | None, full_depth: int = SAM_DEPTH, global_blocks: Sequence[int] = SAM_GLOBAL_BLOCKS
) -> list[int]:
    """Indexes of the published blocks a model of `depth` blocks keeps, in order.

    The first `depth` blocks when they include a global block; otherwise the first `depth - 1`
    blocks and the first global block (depth 2 -> blocks 0 and 2).
    """
    if depth is None or depth >= full_depth:
        return list(range(full_depth))
    if depth < 1:
        raise ValueError("depth must be at least 1")
    first = list(range(depth))
    if any(i in global_blocks for i in first):
        return first
    return [*range(depth - 1), global_blocks[0]]


def global_positions(
    kept: Sequence[int], global_blocks: Sequence[int] = SAM_GLOBAL_BLOCKS
) -> list[int]:
    """Positions, in the (reduced) model, of the kept blocks that attend globally."""
    return [pos for pos, index in enumerate(kept) if index in global_blocks]


def renumber_blocks(layout: CheckpointLayout, kept: Sequence[int]) -> CheckpointLayout:
    """The layout with only the `kept` blocks, renumbered 0, 1, ... in the order given (the
    reduced layout of a model built from `kept_blocks`)."""
    patterns = [re.compile(p) for p in layout.block_patterns]
    position = {index: pos for pos, index in enumerate(kept)}
    tensors = {}
    for key, spec in layout.tensors.items():
        for pattern in patterns:
            match = pattern.search(key)
            if match:
                index = int(match.group(1))
                if index not in position:
                    break
                key = f"{key[: match.start(1)]}{position[index]}{key[match.end(1) :]}"
                tensors[key] = spec
                break
        else:
            tensors[key] = spec
    return replace(layout, tensors=tensors)


def reduced_layouts(names: Sequence[str], depth: int | None) -> list[CheckpointLayout]:
    """The manifests `names`, reduced to the blocks a `depth`-block model keeps."""
    layouts = [CheckpointLayout.load(name) for name in names]
    if depth is None:
        return layouts
    return [renumber_blocks(layout, kept_blocks(depth)) for layout in layouts]


def sam_input_spec(depth: int | None) -> InputSpec:
    """SAM's pixel_mean/std (123.675, 116.28, 103.53) / (58.395, 57.12, 57.375) on 0-255 are
    ImageNet's values on [0, 1]. SAM resizes the long side to 1024 (bilinear, PIL) and pads the
    short side; the benchmark's images are square, so a plain resize is the same input. Reduced
    (test) variants run at REDUCED_INPUT."""
    side = SAM_INPUT if depth is None else REDUCED_INPUT
    return InputSpec(
        size=(side, side),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        channels=3,
        interpolation="bilinear",
    )


# --- key mappings onto timm's samvit ------------------------------------------------------------
# Official segment_anything ImageEncoderViT -> timm samvit (what timm's checkpoint_filter_fn does).
_OFFICIAL_RULES = (
    (re.compile(r"^pos_embed$"), "pos_embed"),
    (re.compile(r"^patch_embed\.proj\.(weight|bias)$"), r"patch_embed.proj.\1"),
    (
        re.compile(r"^blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj)\.(weight|bias)$"),
        r"blocks.\1.\2.\3",
    ),
    (re.compile(r"^blocks\.(\d+)\.attn\.(rel_pos_h|rel_pos_w)$"), r"blocks.\1.attn.\2"),
    (re.compile(r"^blocks\.(\d+)\.mlp\.lin([12])\.(weight|bias)$"), r"blocks.\1.mlp.fc\2.\3"),
    (re.compile(r"^neck\.([0-3])\.(weight|bias)$"), r"neck.\1.\2"),
)
# mmpretrain ViTSAM -> timm samvit (UltraSam's weights/convert_sam_bb_to_mmdet.py renames the
# other way: blocks -> layers, patch_embed.proj -> .projection, norm -> ln, mlp.lin1 ->
# ffn.layers.0.0, mlp.lin2 -> ffn.layers.1, neck -> channel_reduction).
_VITSAM_RULES = (
    (re.compile(r"^pos_embed$"), "pos_embed"),
    (re.compile(r"^patch_embed\.projection\.(weight|bias)$"), r"patch_embed.proj.\1"),
    (re.compile(r"^layers\.(\d+)\.ln([12])\.(weight|bias)$"), r"blocks.\1.norm\2.\3"),
    (re.compile(r"^layers\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)$"), r"blocks.\1.attn.\2.\3"),
    (re.compile(r"^layers\.(\d+)\.attn\.(rel_pos_h|rel_pos_w)$"), r"blocks.\1.attn.\2"),
    (re.compile(r"^layers\.(\d+)\.ffn\.layers\.0\.0\.(weight|bias)$"), r"blocks.\1.mlp.fc1.\2"),
    (re.compile(r"^layers\.(\d+)\.ffn\.layers\.1\.(weight|bias)$"), r"blocks.\1.mlp.fc2.\2"),
    (re.compile(r"^channel_reduction\.([0-3])\.(weight|bias)$"), r"neck.\1.\2"),
)


def _rename(state: Mapping[str, Any], rules: Sequence[tuple[re.Pattern, str]], what: str) -> dict:
    out = {}
    for key, value in state.items():
        for pattern, target in rules:
            if pattern.match(key):
                out[pattern.sub(target, key)] = value
                break
        else:
            raise UserError(f"{what}: unexpected key '{key}' (not part of a SAM ViT image encoder)")
    return out


def official_to_timm(encoder: Mapping[str, Any], what: str) -> dict:
    """segment_anything `image_encoder.*` keys (prefix removed) -> timm samvit keys."""
    return _rename(encoder, _OFFICIAL_RULES, what)


def vitsam_to_timm(backbone: Mapping[str, Any], what: str) -> dict:
    """mmpretrain ViTSAM keys (`backbone.` removed) -> timm samvit keys."""
    return _rename(backbone, _VITSAM_RULES, what)


def sub_state(state: Mapping[str, Any], prefix: str) -> dict:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def mmengine_backbone(checkpoint: Mapping[str, Any]) -> dict | None:
    """`backbone.*` of an mmengine checkpoint ({'state_dict': ..., 'meta': ...}), or None."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        return None
    backbone = sub_state(state, "backbone.")
    return backbone or None


# --- the adapter ----------------------------------------------------------------------------------
def sam_vitb_kwargs(depth: int | None) -> dict[str, Any]:
    """timm samvit_base_patch16 arguments as SAM builds its ViT-B encoder, `depth` blocks per the
    reduced plan. LayerNorm eps is SAM's 1e-6 (timm's samvit defaults to 1e-5)."""
    kept = kept_blocks(depth)
    return {
        "num_classes": 0,
        "depth": len(kept),
        "global_attn_indexes": global_positions(kept),
        "norm_layer": partial(nn.LayerNorm, eps=1e-6),
    }


def build_sam_vitb(depth: int | None = None, img_size: int = SAM_INPUT) -> nn.Module:
    """The SAM ViT-B encoder with random weights; `img_size` sets the position tables' grid."""
    return timm.create_model(
        "samvit_base_patch16", pretrained=False, img_size=img_size, **sam_vitb_kwargs(depth)
    )


def samvit_maps(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(neck output [B, 256, h, w], last block's output [B, 768, h, w]) of a timm samvit."""
    neck, (tokens,) = model.forward_intermediates(x, indices=1, norm=False)
    return neck, tokens


def samvit_poolings(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Neck-output mean (256-d) and last-block mean before the neck (768-d) of a timm samvit."""
    return maps_poolings(*samvit_maps(model, x))


def maps_poolings(neck: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The SAM family's poolings of the neck output and the neck's input, both NCHW."""
    return {NECK_MEAN: neck.mean(dim=(2, 3)), PRENECK_MEAN: tokens.mean(dim=(2, 3))}


class SamViTBAdapter(TimmAdapter):
    """A SAM ViT-B image encoder: timm samvit with SAM's settings, 1024 px, ImageNet mean/std,
    neck-mean and pre-neck-mean poolings. Subclasses name the weights and their layouts.
    Reduced variants keep a global block (`kept_blocks`) and run at REDUCED_INPUT px.

    Patch tokens: the neck output, SAM's 256-d image embedding (what its mask decoder reads:
    conv 1x1, LayerNorm2d, conv 3x3, LayerNorm2d after the last block), 64 x 64 at 1024 px
    (16 x 16 for reduced variants at REDUCED_INPUT px); its mean is the 'mean' pooling. All of
    the token contract is defined here, none of TimmAdapter's generic implementation applies.
    """

    poolings = (NECK_MEAN, PRENECK_MEAN)  # type: ignore[assignment]
    mean_of_tokens = NECK_MEAN

    def __init__(self, name: str, model_name: str = "samvit_base_patch16.sa1b") -> None:
        super().__init__(name, model_name=model_name)

    def model_kwargs(self) -> dict[str, Any]:
        return sam_vitb_kwargs(self.depth)

    @property
    def input_spec(self) -> InputSpec:
        return sam_input_spec(self.depth)

    @property
    def embed_dims(self) -> dict[str, int]:
        return {NECK_MEAN: NECK_WIDTH, PRENECK_MEAN: 768}

    def checkpoint_layouts(self) -> list[CheckpointLayout]:
        return reduced_layouts(self.layouts, self.depth)

    @property
    def token_dim(self) -> int:
        return NECK_WIDTH

    @property
    def token_grid(self) -> tuple[int, int]:
        return patch_grid(self.input_spec.size, SAM_PATCH)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.model is not None, "load() first"
        return samvit_poolings(self.model, x)

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        """The neck output [B, 256, h, w] (SAM's image embedding) as tokens [B, h * w, 256]."""
        assert self.model is not None, "load() first"
        neck, _ = samvit_maps(self.model, x)
        return map_tokens(neck)


@register_model("sam-vitb")
class SamViTB(SamViTBAdapter):
    """SAM ViT-B image encoder (SA-1B). Loads the released `sam_vit_b_01ec64.pth` (whole SAM:
    `image_encoder.*` kept, prompt encoder and mask decoder dropped), timm's hub copy, or
    OpenMMLab's ViTSAM conversion; without a file, timm's hub copy is downloaded."""

    layouts = ("sam-vitb-official", "sam-vitb-timm", "sam-vitb-mmpretrain")

    def __init__(self, name: str = "sam-vitb") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="SAM ViT-B/16 image encoder (timm samvit_base_patch16): 12 blocks, "
            "768-d, windowed (14x14) attention with global blocks 2/5/8/11, decomposed relative "
            "positions, conv neck to 256 x 64 x 64; 1024 px",
            pretraining_data="SA-1B (11M images, 1.1B masks), promptable segmentation",
            weights_source="hf-hub:timm/samvit_base_patch16.sa1b; "
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
            license="Apache-2.0",
            citation=SAM_CITATION,
            family="SAM",
            params=count_parameters(self.meta_model()),
            notes=(
                "Input: 1024 px, bilinear, ImageNet mean/std (= SAM's pixel_mean/std on 0-255). "
                "SAM resizes the long side to 1024 and pads; square images make that a plain "
                "resize. Poolings: 'mean' = global average of the neck output (256 x 64 x 64, "
                "the image embedding SAM's decoder reads; no linear-probe protocol is published "
                "for SAM); 'preneck-mean' = average of the last block's 768-d tokens (what "
                "UltraSam's classification configs probe for their SAM baseline). LayerNorm eps "
                "1e-6 as in segment_anything (timm's samvit uses 1e-5). How the US-JEPA paper "
                "ran SAM encoders on its 224-px protocol is unverified."
            ),
            extra={"global_attn_blocks": list(SAM_GLOBAL_BLOCKS), "input_px": SAM_INPUT},
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        backbone = mmengine_backbone(checkpoint)
        if backbone is not None:
            return vitsam_to_timm(backbone, source)
        if any(isinstance(k, str) and k.startswith("image_encoder.") for k in checkpoint):
            # the whole SAM: the prompt encoder and mask decoder are not benchmarked
            return official_to_timm(sub_state(checkpoint, "image_encoder."), source)
        if "patch_embed.proj.weight" in checkpoint and "neck.0.weight" in checkpoint:
            return dict(checkpoint)  # timm's own key layout
        raise UserError(
            f"{source} is not a SAM ViT-B checkpoint: expected the released sam_vit_b_01ec64.pth "
            "(image_encoder.* keys), timm's samvit state dict, or an mmpretrain ViTSAM file "
            "({'state_dict': {'backbone.*'}})"
        )
