"""I-JEPA ViT encoders (Assran et al., CVPR 2023), and the I-JEPA-style ViT loader that the
US-JEPA and RadJEPA adapters reuse.

facebookresearch/ijepa's `VisionTransformer` has no class token, a fixed 2-D sin-cos position
embedding stored as a parameter (`pos_embed` [1, N, D], so it is in every state dict), pre-norm
blocks with LayerNorm(eps=1e-6), exact GELU and a final LayerNorm. Its module names are the same
as timm's, so the encoder is timm's `VisionTransformer(class_token=False, global_pool='avg',
fc_norm=False, num_classes=0)`, built here with the official widths, depths and head counts (not
a registered timm name: timm's `vit_base_patch16_gap_224` has 16 heads where I-JEPA's ViT-B has 12).

The released training files hold three encoders' worth of weights; which one is evaluated is a
per-model decision (`checkpoint_entry`): I-JEPA evaluates the EMA `target_encoder`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from timm.models.vision_transformer import VisionTransformer

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
    token_poolings,
)
from ultrabench_eval.models.downloads import download_url
from ultrabench_eval.models.weights import read_checkpoint, strict_load, strip_prefixes

IJEPA_URL = "https://dl.fbaipublicfiles.com/ijepa/"
IJEPA_CITATION = (
    "Assran et al., Self-Supervised Learning from Images with a Joint-Embedding Predictive "
    "Architecture, CVPR 2023"
)
# Every key of an I-JEPA encoder state dict (identical in timm's VisionTransformer). Listed so a
# file that is some other model fails with a clear message instead of a long key diff.
_ENCODER_KEY = re.compile(
    r"^(pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)"
    r"|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias))$"
)
_DDP_PREFIX = "module."


@dataclass(frozen=True)
class JepaViT:
    """The arguments of one of I-JEPA's `vit_*` factories (src/models/vision_transformer.py)."""

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    img_size: int = 224

    def build(self, depth: int | None = None) -> VisionTransformer:
        return VisionTransformer(
            img_size=self.img_size,
            patch_size=self.patch_size,
            in_chans=3,
            num_classes=0,
            global_pool="avg",
            embed_dim=self.embed_dim,
            depth=depth or self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=True,
            class_token=False,
            fc_norm=False,  # the final `norm` is I-JEPA's last LayerNorm; pooling comes after it
        )


VIT_B14 = JepaViT(patch_size=14, embed_dim=768, depth=12, num_heads=12)
VIT_B16 = JepaViT(patch_size=16, embed_dim=768, depth=12, num_heads=12)
VIT_H14 = JepaViT(patch_size=14, embed_dim=1280, depth=32, num_heads=16)
VIT_G16 = JepaViT(patch_size=16, embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11)


def jepa_encoder_state(
    checkpoint: Mapping[str, Any], source: str, entry: str, model: str
) -> dict[str, torch.Tensor]:
    """The encoder state dict of a JEPA checkpoint, keys as timm's VisionTransformer names them.

    `checkpoint[entry]` when the file is a training checkpoint (I-JEPA's save layout), else the
    file itself when it is a flat state dict (timm layout); a DDP `module.` prefix is removed.
    Never falls back to another entry: loading the context encoder where the EMA encoder is meant
    (or the reverse) would silently benchmark a different model.
    """
    nested = checkpoint.get(entry)
    if isinstance(nested, Mapping) and nested:
        state = dict(nested)
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state = dict(checkpoint)
    else:
        entries = sorted(k for k, v in checkpoint.items() if isinstance(v, Mapping))
        raise UserError(
            f"{source} is not a {model} checkpoint: expected a training checkpoint with a "
            f"'{entry}' state dict or a flat encoder state dict; it has the entries {entries} "
            f"(the '{entry}' entry is the encoder this benchmark evaluates)"
        )
    state = strip_prefixes(state, (_DDP_PREFIX,))
    foreign = sorted(k for k in state if not _ENCODER_KEY.match(k))
    if foreign:
        raise UserError(
            f"{source}: {len(foreign)} keys are not ViT encoder keys of {model} "
            f"(e.g. {', '.join(foreign[:3])}); pass the original checkpoint or a timm-layout "
            "state dict of the encoder"
        )
    return state


LAST4 = "mean-last4"


class JepaViTAdapter(CheckpointAdapter):
    """An I-JEPA-style ViT encoder (no class token): `mean` is the mean of the final
    LayerNorm's patch tokens; adapters whose paper also probes the last four layers add
    `mean-last4` to `poolings`. Subclasses set `vit`, `checkpoint_entry`, `layouts` and `info`.

    Patch tokens: the output of the last block through the final LayerNorm (what I-JEPA's
    evaluation average-pools, paper App. A.1), all of them (there is no class token), on the
    (img_size / patch)^2 grid: 16x16 for patch 14 and 14x14 for patch 16 at 224 px. `mean` is
    their mean; `mean-last4` (the last four blocks) is not."""

    vit: ClassVar[JepaViT]
    checkpoint_entry: ClassVar[str] = "target_encoder"
    model_label: ClassVar[str] = "I-JEPA"
    mean: ClassVar[tuple[float, ...]] = IMAGENET_MEAN
    std: ClassVar[tuple[float, ...]] = IMAGENET_STD
    poolings = ("mean",)
    mean_of_tokens: ClassVar[str | None] = "mean"

    @property
    def input_spec(self) -> InputSpec:
        size = (self.vit.img_size, self.vit.img_size)
        return InputSpec(size=size, mean=self.mean, std=self.std, channels=3)

    @property
    def embed_dims(self) -> dict[str, int]:
        dims = {"mean": self.vit.embed_dim}
        if LAST4 in self.poolings:
            dims[LAST4] = self.vit.embed_dim * self._last_layers()
        return dims

    @property
    def token_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def token_grid(self) -> tuple[int, int]:
        side = self.vit.img_size // self.vit.patch_size
        return (side, side)

    def _last_layers(self) -> int:
        return min(4, self.depth or self.vit.depth)  # reduced test variants may have fewer

    def build_model(self) -> torch.nn.Module:
        return self.vit.build(self.depth)

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return jepa_encoder_state(checkpoint, source, self.checkpoint_entry, self.model_label)

    def load_file(self, path: Path, weights_id: str) -> tuple[torch.nn.Module, str]:
        """(model, weights id) from a downloaded checkpoint file."""
        state = self.convert_checkpoint(read_checkpoint(path), str(path))
        model = self.build_model()
        strict_load(model, state, f"weights file {path}")
        return model, weights_id

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.model is not None, "load() first"
        if LAST4 not in self.poolings:
            return token_poolings(self._final_tokens(x), num_prefix_tokens=0)
        # one pass: final tokens plus the last blocks' outputs, each through the final norm
        tokens, layers = self.model.forward_intermediates(
            x, indices=self._last_layers(), norm=True, output_fmt="NLC"
        )
        last4 = torch.cat([layer.mean(dim=1) for layer in layers], dim=-1)
        return {"mean": tokens.mean(dim=1), LAST4: last4}

    def _final_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, D]: the last block's output through the final LayerNorm (no prefix tokens)."""
        assert self.model is not None, "load() first"
        return self.model.forward_features(x)

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        return grid_tokens(self._final_tokens(x), num_prefix_tokens=0, grid=self.token_grid)


class IJepaAdapter(JepaViTAdapter):
    """An I-JEPA release: the EMA target encoder of the official training file, which is
    downloaded from dl.fbaipublicfiles.com (timm's pretrained loader would take the context
    encoder instead)."""

    arch: ClassVar[str]  # e.g. ViT-H/14
    file_name: ClassVar[str]
    pretraining: ClassVar[str]
    timm_name: ClassVar[str]
    # the paper's linear probes take the best of these two (App. A.2)
    poolings = ("mean", LAST4)

    @property
    def url(self) -> str:
        return IJEPA_URL + self.file_name

    @property
    def info(self) -> ModelInfo:
        v = self.vit
        return ModelInfo(
            architecture=(
                f"{self.arch} ({v.embed_dim}-d, {v.depth} blocks, {v.num_heads} heads), "
                f"{v.img_size} px, no class token, fixed 2-D sin-cos positions; I-JEPA target "
                f"(EMA) encoder as timm {self.timm_name}(num_classes=0)"
            ),
            pretraining_data=self.pretraining,
            weights_source=(
                f"{self.url} (entry 'target_encoder'); timm {self.timm_name}.*_ijepa converts the "
                "same file but keeps its context 'encoder'"
            ),
            license="CC-BY-NC-4.0",
            citation=IJEPA_CITATION,
            family="I-JEPA",
            params=count_parameters(self.meta_model()),
            notes=(
                "Encoder: the EMA target encoder ('We use the target-encoder for evaluation and "
                "average pool its output', paper App. A.1). Poolings (App. A.2 reports the best "
                "of both): 'mean' = average-pooled patch tokens of the last layer (after the "
                "final LayerNorm); 'mean-last4' = concatenation of the average-pooled outputs of "
                "the last 4 blocks, each through the final LayerNorm (whether the paper's VISSL "
                "recipe normalised the intermediate layers is not stated: unverified). Mean/std: "
                "ImageNet, as src/transforms.py of facebookresearch/ijepa; resize without crop "
                "(benchmark protocol; timm's crop_pct 0.9 is not applied). The transformers "
                "copies (hf-hub facebook/ijepa_*) are not an accepted layout: other key names, "
                "and reportedly the context encoder (unverified)."
            ),
            extra={"checkpoint_entry": self.checkpoint_entry, "url": self.url},
        )

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        downloaded = download_url(self.url, "ijepa")
        return self.load_file(downloaded.path, downloaded.weights_id)


@register_model("ijepa-vith14-in1k")
class IJepaViTH14IN1k(IJepaAdapter):
    """I-JEPA ViT-H/14, ImageNet-1k, 300 epochs."""

    vit = VIT_H14
    arch = "ViT-H/14"
    file_name = "IN1K-vit.h.14-300e.pth.tar"
    timm_name = "vit_huge_patch14_gap_224"
    pretraining = "ImageNet-1k (images only), I-JEPA multi-block latent prediction, 300 epochs"
    layouts = ("ijepa-vith14-in1k-release", "ijepa-vith14-timm")

    def __init__(self, name: str = "ijepa-vith14-in1k") -> None:
        super().__init__(name)


@register_model("ijepa-vith14-in22k")
class IJepaViTH14IN22k(IJepaAdapter):
    """I-JEPA ViT-H/14, ImageNet-22k."""

    vit = VIT_H14
    arch = "ViT-H/14"
    file_name = "IN22K-vit.h.14-900e.pth.tar"
    timm_name = "vit_huge_patch14_gap_224"
    pretraining = (
        "ImageNet-22k (images only), I-JEPA multi-block latent prediction, 66 epochs per the "
        "README and configs/in22k_vith14_ep66.yaml (the file name says 900e)"
    )
    layouts = ("ijepa-vith14-in22k-release", "ijepa-vith14-timm")

    def __init__(self, name: str = "ijepa-vith14-in22k") -> None:
        super().__init__(name)


@register_model("ijepa-vitg16-in22k")
class IJepaViTG16IN22k(IJepaAdapter):
    """I-JEPA ViT-g/16, ImageNet-22k."""

    vit = VIT_G16
    arch = "ViT-g/16"
    file_name = "IN22K-vit.g.16-600e.pth.tar"
    timm_name = "vit_giant_patch16_gap_224"
    pretraining = (
        "ImageNet-22k (images only), I-JEPA multi-block latent prediction, 44 epochs per the "
        "README and configs/in22k_vitg16_ep44.yaml (the file name says 600e)"
    )
    layouts = ("ijepa-vitg16-in22k-release", "ijepa-vitg16-timm")

    def __init__(self, name: str = "ijepa-vitg16-in22k") -> None:
        super().__init__(name)
