"""DINOv2 ViT-S/14 and ViT-B/14, without and with 4 registers (Oquab et al., 2024; Darcet et al.,
2024), plus the pieces the other DINO-family modules share: explicit key renaming and the
DINO poolings.

The architecture is timm's VisionTransformer with two things done exactly as
facebookresearch/dinov2 (`DinoVisionTransformer.prepare_tokens_with_masks`) does them:

* the learned 37x37 position embedding (518 px pre-training grid) is resampled to the input's
  grid with the official bicubic call: `scale_factor=(grid + 0.1) / 37`, no antialias, for the
  models without registers; `size=grid`, antialias, for the models with registers. timm's own
  resampling (size-based, antialiased) differs from the first of these.
* the CLS position is kept inside `pos_embed` ([1, 1 + 37*37, D], as the released files hold
  it) and registers are inserted after the CLS token, with no position embedding.

Input: 224 px, the resolution DINOv2's linear evaluation and model card use ("for a 224x224
image, this results in 1 class token + 256 patch tokens"), so the position embedding is
resampled from 37x37 to 16x16 as the official code does it at that size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

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
    patch_grid,
)
from ultrabench_eval.models.downloads import (
    Downloaded,
    DownloadError,
    download_hub_file,
    download_url,
)

DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2"
DINOV2_CITATION = (
    "Oquab et al., DINOv2: Learning Robust Visual Features without Supervision, TMLR 2024"
)
REGISTERS_CITATION = "Darcet et al., Vision Transformers Need Registers, ICLR 2024"
# DINO poolings: the papers' linear probe reads CLS concatenated with the mean of patch tokens.
DINO_POOLINGS = ("cls+mean", "cls", "mean")

Rule = tuple[str, str]


# --- shared by the DINO-family modules ---------------------------------------------------------
def rename_keys(
    state: Mapping[str, Any],
    rules: Sequence[Rule],
    dropped: Sequence[str],
    layout: str,
    source: str,
) -> dict[str, Any]:
    """Each key renamed by the first rule whose pattern matches all of it (`\\1` groups in the
    target), or dropped on purpose (`dropped`, full-match patterns). A key matched by neither is
    a UserError: an explicit mapping, not a best effort."""
    compiled = [(re.compile(p), target) for p, target in rules]
    drop = [re.compile(p) for p in dropped]
    out: dict[str, Any] = {}
    for key, value in state.items():
        if any(p.fullmatch(key) for p in drop):
            continue
        for pattern, target in compiled:
            match = pattern.fullmatch(key)
            if match:
                out[match.expand(target)] = value
                break
        else:
            raise UserError(
                f"{source}: key '{key}' is not part of the {layout} layout "
                "(check that the file is the checkpoint this model expects)"
            )
    return out


_QKV_PART = re.compile(r"(.+\.attn\.)([qkv])_part\.(weight|bias)")


def fuse_qkv(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Concatenate `<block>.attn.{q,k,v}_part.<param>` triples into timm's fused
    `<block>.attn.qkv.<param>` (q, k, v stacked along the output dimension, as one nn.Linear)."""
    out: dict[str, Any] = {}
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in state.items():
        match = _QKV_PART.fullmatch(key)
        if match:
            parts.setdefault((match[1], match[3]), {})[match[2]] = value
        else:
            out[key] = value
    for (prefix, param), qkv in parts.items():
        fused = f"{prefix}qkv.{param}"
        if sorted(qkv) != ["k", "q", "v"]:
            raise UserError(
                f"{source}: {fused} needs query, key and value tensors; got {sorted(qkv)}"
            )
        shapes = [tuple(qkv[p].shape) for p in "qkv"]
        if len(set(shapes)) != 1:
            raise UserError(f"{source}: query/key/value of {fused} differ in shape: {shapes}")
        out[fused] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)
    return out


def dino_poolings(tokens: torch.Tensor, num_prefix_tokens: int) -> dict[str, torch.Tensor]:
    """From the final normed tokens [B, 1 + registers + patches, D]: `cls`, `mean` (patch tokens
    only: registers / storage tokens are never averaged) and `cls+mean` (their concatenation,
    the input of DINOv2's and DINOv3's linear probes)."""
    cls = tokens[:, 0]
    mean = tokens[:, num_prefix_tokens:].mean(dim=1)
    return {"cls+mean": torch.cat([cls, mean], dim=1), "cls": cls, "mean": mean}


# --- the DINOv2 architecture ------------------------------------------------------------------
class DinoV2ViT(VisionTransformer):
    """timm's VisionTransformer with DINOv2's token preparation (see the module docstring).

    State dict: timm's names, with `pos_embed` [1, 1 + grid, D] (CLS slot included) and
    `reg_token` [1, R, D] when the model has registers.
    """

    def __init__(
        self, *, interpolate_offset: float, interpolate_antialias: bool, **kwargs: Any
    ) -> None:
        # no_embed_class: timm then sizes pos_embed without prefix slots; it is replaced below.
        super().__init__(no_embed_class=True, dynamic_img_size=True, **kwargs)
        grid = self.patch_embed.grid_size
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid[0] * grid[1], self.embed_dim))
        self.interpolate_offset = interpolate_offset
        self.interpolate_antialias = interpolate_antialias

    def resampled_pos_embed(self, height: int, width: int) -> torch.Tensor:
        """`pos_embed` for a height x width patch grid, computed as the official
        `interpolate_pos_encoding` computes it (same call, same arguments, same precision)."""
        pos = self.pos_embed
        count = pos.shape[1] - 1
        if height * width == count and height == width:
            return pos
        side = int(math.sqrt(count))
        dim = pos.shape[-1]
        patch_pos = pos[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            # the official kludge: a scale factor slightly above grid / side
            size_or_scale: dict[str, Any] = {
                "scale_factor": (
                    (height + self.interpolate_offset) / side,
                    (width + self.interpolate_offset) / side,
                )
            }
        else:
            size_or_scale = {"size": (height, width)}
        patch_pos = F.interpolate(
            patch_pos, mode="bicubic", antialias=self.interpolate_antialias, **size_or_scale
        )
        if tuple(patch_pos.shape[-2:]) != (height, width):
            raise ValueError(f"position embedding resampled to {tuple(patch_pos.shape[-2:])}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, height * width, dim)
        return torch.cat([pos[:, :1].float(), patch_pos], dim=1).to(pos.dtype)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, dim = x.shape  # patch_embed gives NHWC (dynamic_img_size)
        x = x.reshape(batch, height * width, dim)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        x = x + self.resampled_pos_embed(height, width)
        if self.reg_token is not None:  # registers: after CLS, without position embedding
            registers = self.reg_token.expand(batch, -1, -1)
            x = torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)
        return self.pos_drop(x)


def build_dinov2_vit(
    *,
    embed_dim: int,
    depth: int,
    num_heads: int,
    registers: int,
    interpolate_offset: float,
    interpolate_antialias: bool,
    img_size: int = 518,
) -> DinoV2ViT:
    """The DINOv2 ViT/14 (LayerNorm eps 1e-6, MLP ratio 4, qkv bias, layer scale) without head."""
    return DinoV2ViT(
        img_size=img_size,
        patch_size=14,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        init_values=1e-5,  # layer scale exists; its values come from the checkpoint
        reg_tokens=registers,
        num_classes=0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        interpolate_offset=interpolate_offset,
        interpolate_antialias=interpolate_antialias,
    )


# Official (facebookresearch/dinov2) names -> DinoV2ViT names; timm shares the block names.
_BLOCK_RULES: list[Rule] = [
    (r"patch_embed\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"blocks\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"blocks.\1.\2.\3"),
    (r"blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", r"blocks.\1.attn.\2.\3"),
    (r"blocks\.(\d+)\.(ls1|ls2)\.gamma", r"blocks.\1.\2.gamma"),
    (r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", r"norm.\1"),
]
OFFICIAL_DINOV2_RULES: list[Rule] = [
    ("cls_token", "cls_token"),
    ("pos_embed", "pos_embed"),
    ("register_tokens", "reg_token"),
    *_BLOCK_RULES,
]
# mask_token: iBOT's masked-patch embedding, used in pre-training only.
OFFICIAL_DINOV2_DROPPED = ("mask_token",)
TIMM_DINOV2_RULES: list[Rule] = [
    ("cls_token", "cls_token"),
    ("reg_token", "reg_token"),
    ("pos_embed", "pos_embed"),
    *_BLOCK_RULES,
]


def official_dinov2_state(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A facebookresearch/dinov2 backbone state dict (the released `*_pretrain.pth`) ->
    DinoV2ViT's state dict."""
    return rename_keys(state, OFFICIAL_DINOV2_RULES, OFFICIAL_DINOV2_DROPPED, "DINOv2", source)


def timm_dinov2_state(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """timm's DINOv2 layout -> DinoV2ViT's. timm's register models fold the CLS position into
    `cls_token` and drop its slot from `pos_embed` ([1, grid, D]); the slot is restored as zeros,
    which gives the same CLS input (cls + 0) as timm's forward."""
    out = rename_keys(state, TIMM_DINOV2_RULES, (), "timm DINOv2", source)
    pos = out.get("pos_embed")
    if "reg_token" in out and isinstance(pos, torch.Tensor) and pos.ndim == 3:
        side = math.isqrt(pos.shape[1])
        if side * side == pos.shape[1]:  # no CLS slot: the folded layout
            out["pos_embed"] = torch.cat([pos.new_zeros(1, 1, pos.shape[-1]), pos], dim=1)
    return out


def dinov2_state(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The official release file or timm's hub copy (told apart by the keys only the official
    files have), mapped onto DinoV2ViT."""
    if not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        top = sorted(checkpoint)[:6]
        raise UserError(
            f"{source}: expected a flat DINOv2 state dict (the released *_pretrain.pth or timm's "
            f"model.safetensors); top-level keys are {top}"
        )
    if "mask_token" in checkpoint or "register_tokens" in checkpoint:
        return official_dinov2_state(checkpoint, source)
    return timm_dinov2_state(checkpoint, source)


# --- adapters -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DinoV2Variant:
    arch: str  # "vits14" / "vitb14", as in the official file names
    embed_dim: int
    num_heads: int
    registers: int  # 0, or 4 for the "with registers" release
    timm_name: str

    @property
    def official_name(self) -> str:
        return f"dinov2_{self.arch}{'_reg4' if self.registers else ''}"

    @property
    def url(self) -> str:
        return f"{DINOV2_URL}/dinov2_{self.arch}/{self.official_name}_pretrain.pth"

    @property
    def hub_id(self) -> str:
        return f"timm/{self.timm_name}.lvd142m"

    @property
    def layout_stem(self) -> str:
        return f"dinov2-{self.arch}{'-reg4' if self.registers else ''}"


class DinoViTAdapter(CheckpointAdapter):
    """What DINOv2, DINOv3 and RAD-DINO adapters share: a timm VisionTransformer whose
    `forward_features` gives the final normed tokens, poolings from them (`dino_poolings`), and
    their patch tokens (prefix tokens dropped) on the `patch_size` grid, whose mean is `mean`.
    Subclasses set `patch_size` and `token_dim`."""

    mean_of_tokens: ClassVar[str | None] = "mean"
    patch_size: int

    @property
    def token_grid(self) -> tuple[int, int]:
        return patch_grid(self.input_spec.size, self.patch_size)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dino_poolings(*self._final_tokens(x))

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        tokens, prefix = self._final_tokens(x)
        return grid_tokens(tokens, prefix, patch_grid(x.shape, self.patch_size))

    def _final_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(the final normed tokens [B, prefix + patches, D], the prefix count: CLS, registers
        or storage tokens)."""
        assert self.model is not None, "load() first"
        return self.model.forward_features(x), self.model.num_prefix_tokens


class DinoV2Adapter(DinoViTAdapter):
    """A DINOv2 backbone, 224 px, poolings `cls+mean` (DINOv2's linear probe: CLS concatenated
    with the mean of patch tokens, the default), `cls` and `mean`.

    Patch tokens: the last block's output through the final LayerNorm without the CLS and
    register tokens (the official `x_norm_patchtokens`), 16x16 at 224 px, width 384 (S) or 768
    (B). `mean` is their mean."""

    version = "1"
    poolings = DINO_POOLINGS
    depth_full = 12
    patch_size = 14

    def __init__(self, name: str, variant: DinoV2Variant) -> None:
        super().__init__(name)
        self.variant = variant
        # timm's register layout folds the CLS position into cls_token, one D-vector fewer than
        # the official file: its manifest declares the zero slot the conversion restores.
        stem = variant.layout_stem
        self.layouts = (f"{stem}-pretrain", f"{stem}-timm")

    @property
    def info(self) -> ModelInfo:
        v = self.variant
        width = {384: "S", 768: "B"}[v.embed_dim]
        registers = " + 4 registers" if v.registers else ""
        citation = DINOV2_CITATION + (f"; {REGISTERS_CITATION}" if v.registers else "")
        return ModelInfo(
            architecture=f"ViT-{width}/14{registers} (DINOv2, layer scale), 224 px input, "
            "timm VisionTransformer with the official position-embedding resampling",
            pretraining_data="LVD-142M (142M curated web images); DINOv2 self-distillation, "
            "distilled from ViT-g/14",
            weights_source=f"{v.url}; hf-hub:{v.hub_id}",
            license="Apache-2.0",
            citation=citation,
            family="DINOv2",
            params=count_parameters(self.meta_model()),
            notes="Input 224 px (DINOv2's linear-eval resolution; the grayscale frame is resized "
            "whole, not resized to 256 and centre-cropped); the 37x37 position embedding is "
            f"resampled as facebookresearch/dinov2 does ({self._resampling_text()}). Default "
            "pooling cls+mean = [CLS, mean of patch tokens], the model card's linear classifier "
            "input; registers are never in the mean. Files: the official *_pretrain.pth or "
            "timm's model.safetensors (for register models, timm's folded CLS position is "
            "restored as a zero slot: same features).",
        )

    def _resampling_text(self) -> str:
        if self.variant.registers:
            return "bicubic to size, antialiased"
        return "bicubic with scale factor (16 + 0.1) / 37, no antialias"

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic"
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        width = self.variant.embed_dim
        return {"cls+mean": 2 * width, "cls": width, "mean": width}

    @property
    def token_dim(self) -> int:
        return self.variant.embed_dim

    def build_model(self) -> nn.Module:
        registers = self.variant.registers
        return build_dinov2_vit(
            embed_dim=self.variant.embed_dim,
            depth=self.depth or self.depth_full,
            num_heads=self.variant.num_heads,
            registers=registers,
            # facebookresearch/dinov2 hub/backbones.py: the register models were trained with
            # interpolate_offset=0.0 and interpolate_antialias=True, the others with 0.1 / False.
            interpolate_offset=0.0 if registers else 0.1,
            interpolate_antialias=bool(registers),
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return dinov2_state(checkpoint, source)

    def load_pretrained(self) -> tuple[nn.Module, str]:
        """The official release file from dl.fbaipublicfiles.com; timm's hub copy if that host
        cannot be reached."""
        reasons = []
        for fetch, label in ((self._fetch_official, "official"), (self._fetch_timm, "hub")):
            try:
                downloaded = fetch()
            except DownloadError as exc:
                reasons.append(f"{label}: {exc.reason}")
                continue
            model = self.model_from_file(downloaded.path, str(downloaded.path))
            return model, downloaded.weights_id
        raise UserError(
            f"cannot download the weights of '{self.name}' ({'; '.join(reasons)}); pass the "
            f"official {self.variant.official_name}_pretrain.pth or timm's model.safetensors "
            "with --weights FILE"
        )

    def _fetch_official(self) -> Downloaded:
        return download_url(self.variant.url, "dinov2")

    def _fetch_timm(self) -> Downloaded:
        return download_hub_file(self.variant.hub_id, "model.safetensors")


VARIANTS = {
    "dinov2-vits14": DinoV2Variant("vits14", 384, 6, 0, "vit_small_patch14_dinov2"),
    "dinov2-vitb14": DinoV2Variant("vitb14", 768, 12, 0, "vit_base_patch14_dinov2"),
    "dinov2-vits14-reg": DinoV2Variant("vits14", 384, 6, 4, "vit_small_patch14_reg4_dinov2"),
    "dinov2-vitb14-reg": DinoV2Variant("vitb14", 768, 12, 4, "vit_base_patch14_reg4_dinov2"),
}
for _name, _variant in VARIANTS.items():
    register_model(_name)(partial(DinoV2Adapter, _name, _variant))
