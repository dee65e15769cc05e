"""SAMUS (Lin et al., 2023): SAM ViT-B adapted to ultrasound, 256 px input.

A re-implementation of SAMUS's image encoder (xianlin7/SAMUS,
models/segment_anything_samus/modeling/image_encoder.py) whose state-dict keys are exactly
theirs. Differences from SAM's encoder:

- input 256 px; the ViT patch embedding (SAM's 16x16 kernel) is applied with stride 8 to the
  input resized to 264 px, giving a 32 x 32 token grid;
- an input adapter (768 -> 192 -> 768 bottleneck MLP, residual) on the patch tokens;
- SAM's 64 x 64 absolute position table brought to 32 x 32 by a learnt max-pool + conv +
  LayerNorm2d + GELU step;
- a parallel CNN branch (conv + 3 stride-2 max-pool/conv stages to 768 x 32 x 32); in each
  global-attention block (2, 5, 8, 11) the ViT tokens cross-attend to it (q from the tokens,
  k/v from the CNN features), the CNN features are refined by a conv, and a bottleneck MLP
  adapter is added to the MLP output (scale 0.5); after the last block the CNN features are
  added to the tokens (scale 0.5) before SAM's neck (256 x 32 x 32).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from timm.models.vision_transformer_sam import Attention, window_partition, window_unpartition
from torch import nn

from model_zoo.sam import (
    NECK_MEAN,
    NECK_WIDTH,
    PRENECK_MEAN,
    SAM_GLOBAL_BLOCKS,
    global_positions,
    kept_blocks,
    reduced_layouts,
    sub_state,
)
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import (
    CheckpointAdapter,
    InputSpec,
    ModelInfo,
    PatchTokens,
    count_parameters,
    map_tokens,
)
from ultrabench_eval.models.layouts import CheckpointLayout

SAMUS_INPUT = 256
PATCH_STRIDE = 8  # build_sam_us: patch_size = image_size // 32
PATCH_INPUT = SAMUS_INPUT + PATCH_STRIDE  # PatchEmbed0 resizes every input to 264 px
SAM_GRID = 64  # SAM's pretrained 1024 / 16 position table
WIDTH = 768
HEADS = 12
WINDOW = 14
GRID = SAMUS_INPUT // PATCH_STRIDE  # (264 - 16) / 8 + 1 = 32 tokens a side


def _conv_ln_gelu(in_chans: int, out_chans: int) -> nn.Sequential:
    """3x3 conv (no bias), LayerNorm2d, GELU: SAMUS's SingleConv body."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out_chans, eps=1e-6),
        nn.GELU(),
    )


class ConvStage(nn.Module):
    """SAMUS's SingleConv: `conv` = conv3x3 + LayerNorm2d + GELU."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv = _conv_ln_gelu(in_chans, out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DownStage(nn.Module):
    """SAMUS's SingleDown: `maxpool_conv` = 2x2 max-pool, conv3x3, LayerNorm2d, GELU."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), *_conv_ln_gelu(in_chans, out_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class CnnEmbed(nn.Module):
    """The CNN branch (SingleCNNEmbed): 64 channels, then log2(8) = 3 halvings, the channels
    doubling and the last stage reaching 768; NCHW in, NHWC out."""

    def __init__(self, stride: int = PATCH_STRIDE, in_chans: int = 3, width: int = WIDTH) -> None:
        super().__init__()
        stages = int(math.log2(stride))
        channels = 64
        self.inc = ConvStage(in_chans, channels)
        self.downs = nn.ModuleList()
        for i in range(stages):
            out = width if i == stages - 1 else channels * 2
            self.downs.append(DownStage(channels, out))
            channels *= 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inc(x)
        for down in self.downs:
            x = down(x)
        return x.permute(0, 2, 3, 1)


class PostPosEmbed(nn.Module):
    """SAM's 64 x 64 position table brought to the token grid by log2(64 / grid) DownStages."""

    def __init__(self, width: int = WIDTH, source: int = SAM_GRID, target: int = 32) -> None:
        super().__init__()
        self.downs = nn.ModuleList(
            DownStage(width, width) for _ in range(int(math.log2(source // target)))
        )

    def forward(self, pos_embed: torch.Tensor) -> torch.Tensor:
        x = pos_embed.permute(0, 3, 1, 2)
        for down in self.downs:
            x = down(x)
        return x.permute(0, 2, 3, 1)


class PatchEmbedStride8(nn.Module):
    """SAM's 16x16 patch conv applied with stride 8 to the input resized to 264 px
    (SAMUS's PatchEmbed0): 264 -> 32 x 32 tokens, NHWC."""

    def __init__(self, in_chans: int = 3, width: int = WIDTH) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, width, kernel_size=16, stride=PATCH_STRIDE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, (PATCH_INPUT, PATCH_INPUT), mode="bilinear", align_corners=False)
        return self.proj(x).permute(0, 2, 3, 1)


class BottleneckAdapter(nn.Module):
    """SAMUS's Adapter: D_fc1 (768 -> 192), GELU, D_fc2 (192 -> 768), residual when `skip`."""

    def __init__(self, width: int = WIDTH, ratio: float = 0.25, skip: bool = True) -> None:
        super().__init__()
        self.skip = skip
        self.D_fc1 = nn.Linear(width, int(width * ratio))  # SAMUS's key names
        self.D_fc2 = nn.Linear(int(width * ratio), width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.D_fc2(self.act(self.D_fc1(x)))
        return x + out if self.skip else out


class CrossAttention(nn.Module):
    """SAMUS's Space_Adapter (qkvAttention): multi-head attention with separate q/k/v
    projections, queries from the ViT tokens, keys and values from the CNN branch; no relative
    positions. Inputs and output NHWC."""

    def __init__(self, width: int = WIDTH, heads: int = HEADS) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, h * w, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(context)), split(self.v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class Mlp(nn.Module):
    """SAM's MLPBlock: lin1, GELU, lin2."""

    def __init__(self, width: int = WIDTH, hidden: int = 4 * WIDTH) -> None:
        super().__init__()
        self.lin1 = nn.Linear(width, hidden)
        self.lin2 = nn.Linear(hidden, width)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class ParaBlock(nn.Module):
    """A SAM block (windowed, or global with relative positions over the whole grid); global
    blocks carry SAMUS's CNN cross-attention, CNN refinement conv and MLP adapter."""

    def __init__(self, grid: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(WIDTH, eps=1e-6)
        size = (window, window) if window else (grid, grid)
        self.attn = Attention(
            WIDTH, num_heads=HEADS, qkv_bias=True, use_rel_pos=True, input_size=size
        )
        self.norm2 = nn.LayerNorm(WIDTH, eps=1e-6)
        self.mlp = Mlp()
        if window == 0:
            self.MLP_Adapter = BottleneckAdapter(skip=False)  # SAMUS's key names
            self.Space_Adapter = CrossAttention()
            self.refine_Adapter = ConvStage(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor, cnn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shortcut = x
        x = self.norm1(x)
        if self.window:
            h, w = x.shape[1:3]
            windows, padded = window_partition(x, self.window)
            x = window_unpartition(self.attn(windows), self.window, (h, w), padded)
        else:
            x = x + self.Space_Adapter(x, cnn)
            cnn = self.refine_Adapter(cnn.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            x = self.attn(x)
        x = shortcut + x
        normed = self.norm2(x)
        x = x + self.mlp(normed)
        if not self.window:
            x = x + 0.5 * self.MLP_Adapter(normed)
        return x, cnn


class SamusImageEncoder(nn.Module):
    """SAMUS's ImageEncoderViT (ViT-B, 256 px): `depth` blocks per SAM's reduced plan."""

    def __init__(self, depth: int | None = None) -> None:
        super().__init__()
        grid = SAMUS_INPUT // PATCH_STRIDE
        kept = kept_blocks(depth)
        global_at = set(global_positions(kept))
        self.cnn_embed = CnnEmbed()
        self.patch_embed = PatchEmbedStride8()
        self.pos_embed = nn.Parameter(torch.zeros(1, SAM_GRID, SAM_GRID, WIDTH))
        self.post_pos_embed = PostPosEmbed(target=grid)
        self.blocks = nn.ModuleList(
            ParaBlock(grid, 0 if i in global_at else WINDOW) for i in range(len(kept))
        )
        self.neck = nn.Sequential(
            nn.Conv2d(WIDTH, NECK_WIDTH, kernel_size=1, bias=False),
            LayerNorm2d(NECK_WIDTH, eps=1e-6),
            nn.Conv2d(NECK_WIDTH, NECK_WIDTH, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(NECK_WIDTH, eps=1e-6),
        )
        self.input_Adapter = BottleneckAdapter()  # SAMUS's key names

    def forward_preneck(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, 256, 256] on [0, 1] -> the fused tokens before the neck, [B, 32, 32, 768]."""
        cnn = self.cnn_embed(x)
        x = self.input_Adapter(self.patch_embed(x))
        x = x + self.post_pos_embed(self.pos_embed)
        for block in self.blocks:
            x, cnn = block(x, cnn)
        return x + 0.5 * cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The image embedding, [B, 256, 32, 32]."""
        return self.neck(self.forward_preneck(x).permute(0, 3, 1, 2))


@register_model("samus")
class Samus(CheckpointAdapter):
    """SAMUS image encoder (US30K), 256 px, grayscale on [0, 1] repeated to 3 channels with no
    mean/std; poolings: neck-output mean (256-d, default) and pre-neck mean (768-d).

    Patch tokens: the neck output, SAMUS's 256-d image embedding (what its mask decoder reads:
    conv 1x1, LayerNorm2d, conv 3x3, LayerNorm2d on the last block's tokens + 0.5 x the CNN
    branch), on the 32 x 32 grid of the stride-8 patch embedding at 256 px (reduced variants
    too); its mean is the 'mean' pooling."""

    layouts = ("samus-official",)
    poolings = (NECK_MEAN, PRENECK_MEAN)
    mean_of_tokens = NECK_MEAN

    def __init__(self, name: str = "samus") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="SAMUS image encoder: SAM ViT-B/16 (12 blocks, 768-d, window 14, global "
            "blocks 2/5/8/11) at 256 px with a stride-8 patch embedding (32 x 32 tokens), input "
            "adapter, learnt position-table downsampling, a parallel CNN branch with "
            "cross-branch attention and adapters in the global blocks, conv neck to "
            "256 x 32 x 32",
            pretraining_data="SAM ViT-B (SA-1B) adapted on US30K: ~30k ultrasound images, "
            "69k masks from 7 public datasets (TN3K, DDTI, TG3K, BUSI, UDIAT, CAMUS, HMC-QU)",
            weights_source="not public for download here: Google Drive "
            "https://drive.google.com/file/d/1nQjMAvbPeolNpCxQyU_HTiOiB5704pkH (linked from the "
            "xianlin7/SAMUS README); download it and pass it with --weights",
            license="MIT",
            citation="Lin et al., SAMUS: Adapting Segment Anything Model for Clinically-Friendly "
            "and Generalizable Ultrasound Image Segmentation, arXiv:2309.06824 (2023)",
            family="SAM",
            params=count_parameters(self.meta_model()),
            notes=(
                "Input as SAMUS's utils/data_us.py feeds it: grayscale (cv2 flag 0) resized "
                "bilinearly to 256, to_tensor on [0, 1], repeated to 3 channels by the encoder; "
                "Samus.forward calls the encoder without SAM's pixel mean/std. Poolings: 'mean' "
                "= average of the neck output (256 x 32 x 32); 'preneck-mean' = average of the "
                "tokens after the last block plus 0.5 x the CNN branch (768-d). Accepts the "
                "state dict with or without DataParallel's 'module.' prefix (test.py strips it)."
            ),
            extra={"global_attn_blocks": list(SAM_GLOBAL_BLOCKS), "input_px": SAMUS_INPUT},
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(SAMUS_INPUT, SAMUS_INPUT),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            channels=3,
            interpolation="bilinear",
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        return {NECK_MEAN: NECK_WIDTH, PRENECK_MEAN: WIDTH}

    @property
    def token_dim(self) -> int:
        return NECK_WIDTH

    @property
    def token_grid(self) -> tuple[int, int]:
        return GRID, GRID

    def checkpoint_layouts(self) -> list[CheckpointLayout]:
        # reduced variants keep a global block, with its adapters (see model_zoo.sam)
        return reduced_layouts(self.layouts, self.depth)

    def build_model(self) -> nn.Module:
        return SamusImageEncoder(self.depth)

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        state = {
            (k[len("module.") :] if isinstance(k, str) and k.startswith("module.") else k): v
            for k, v in checkpoint.items()
        }
        encoder = sub_state(state, "image_encoder.")
        if "cnn_embed.inc.conv.0.weight" not in encoder:
            raise UserError(
                f"{source} is not a SAMUS checkpoint: expected the state dict of the whole "
                "Samus model with image_encoder.cnn_embed.* keys (optionally 'module.'-prefixed)"
            )
        # prompt_encoder.* and mask_decoder.* are not benchmarked
        return encoder

    def _maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(neck output [B, 256, 32, 32], the neck's input [B, 32, 32, 768])."""
        assert self.model is not None, "load() first"
        tokens = self.model.forward_preneck(x)
        return self.model.neck(tokens.permute(0, 3, 1, 2)), tokens

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        neck, tokens = self._maps(x)
        return {NECK_MEAN: neck.mean(dim=(2, 3)), PRENECK_MEAN: tokens.mean(dim=(1, 2))}

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        """The neck output (SAMUS's image embedding) as tokens [B, 32 * 32, 256]."""
        neck, _ = self._maps(x)
        return map_tokens(neck)
