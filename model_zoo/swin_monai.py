"""MONAI's 2-D Swin Transformer encoder, re-implemented with torch only.

MONAI (`monai.networks.nets.swin_unetr.SwinTransformer`, the SwinUNETR encoder) is not a
dependency of this project, yet several medical foundation models (EchoCare among them) publish
its state dict. This module rebuilds the 2-D case with the same module tree, so such files load
key for key (`patch_embed.proj`, `layers{1..4}.0.blocks.{i}`, `layers{1..4}.0.downsample`, and
with `use_v2` the residual conv stages `layers{1..4}c.0.layer.conv{1,2}.conv`), and with the
same forward semantics:

* windows shrink to the feature map (and shifts vanish) when the map is no larger than a window;
  the relative position index is then sliced to the first n x n entries, as MONAI does;
* shifted windows use the -100 region mask built from slices (-w), (-w, -s), (-s, None);
* patch merging concatenates the 2x2 neighbours as [(0,0), (1,0), (0,1), (1,1)] (row, column)
  offsets, MONAI's order for 2-D (`PatchMerging` and `PatchMergingV2` agree in 2-D);
* `forward` returns five maps (after the patch embedding and after each stage, the last stage's
  merge included), each passed through a LayerNorm over channels without parameters when
  `normalize` is set (MONAI's `proj_out`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_MASK_VALUE = -100.0  # what MONAI (and the original Swin) put on cross-region attention


def window_and_shift(
    size: Sequence[int], window: Sequence[int], shift: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The window and shift MONAI uses on a map of `size`: a dimension no larger than its window
    gets one window covering it and no shift."""
    use_window, use_shift = list(window), list(shift)
    for i, extent in enumerate(size):
        if extent <= window[i]:
            use_window[i] = extent
            use_shift[i] = 0
    return tuple(use_window), tuple(use_shift)


def window_partition(x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """[B, H, W, C] -> [B * windows, wh * ww, C], windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window[0], window[0], w // window[1], window[1], c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window[0] * window[1], c)


def window_merge(
    windows: torch.Tensor, window: Sequence[int], b: int, h: int, w: int
) -> torch.Tensor:
    """Inverse of `window_partition`: [B * windows, wh * ww, C] -> [B, H, W, C]."""
    x = windows.view(b, h // window[0], w // window[1], window[0], window[1], -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def shifted_window_mask(
    h: int, w: int, window: Sequence[int], shift: Sequence[int], device: torch.device | None = None
) -> torch.Tensor:
    """[windows, n, n] additive mask of a map of (padded) size h x w: 0 between tokens of the
    same region after the cyclic shift, -100 between regions."""
    regions = torch.zeros((1, h, w, 1), device=device)
    label = 0
    for rows in (slice(-window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
        for cols in (slice(-window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
            regions[:, rows, cols, :] = label
            label += 1
    ids = window_partition(regions, window).squeeze(-1)
    differ = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.zeros_like(differ).masked_fill(differ != 0, _MASK_VALUE)


def relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """[n, n] index into the (2wh-1)(2ww-1) bias table for every pair of tokens in a window."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window[0]), torch.arange(window[1]), indexing="ij")
    ).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rows = delta[..., 0] + window[0] - 1
    cols = delta[..., 1] + window[1] - 1
    return rows * (2 * window[1] - 1) + cols


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, num_heads: int, window: Sequence[int], qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        table_size = (2 * window[0] - 1) * (2 * window[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size, num_heads))
        # A persistent buffer: MONAI saves it in every state dict.
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        # MONAI slices the full-window index when windows shrink to a small map.
        index = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1)
        bias = bias.unsqueeze(0)  # [1, heads, n, n]
        if mask is not None:
            windows = mask.shape[0]
            bias = bias.unsqueeze(0) + mask.view(1, windows, 1, n, n)
            bias = bias.expand(b // windows, -1, -1, -1, -1).reshape(b, self.num_heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SwinMLP(nn.Module):
    """MONAI's MLPBlock: linear1 -> GELU -> linear2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.fn = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.fn(self.linear1(x)))


class SwinBlock(nn.Module):
    """One (shifted) window attention block on a channels-last map [B, H, W, C]."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: Sequence[int],
        shift: Sequence[int],
        mlp_ratio: float,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.window = tuple(window)
        self.shift = tuple(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, self.window, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMLP(dim, int(dim * mlp_ratio))

    def _attend(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, h, w, _ = x.shape
        window, shift = window_and_shift((h, w), self.window, self.shift)
        pad_b = (window[0] - h % window[0]) % window[0]
        pad_r = (window[1] - w % window[1]) % window[1]
        x = self.norm1(x)
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = x.shape[1:3]
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = self.attn(window_partition(x, window), mask if shifted else None)
        x = window_merge(windows, window, b, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :h, :w, :].contiguous() if pad_b or pad_r else x

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self._attend(x, mask)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (MONAI's order), normalised, projected to 2 * dim."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # Column offset outer, row offset inner: (0,0), (1,0), (0,1), (1,1) as (row, col).
        x = torch.cat([x[:, r::2, c::2, :] for c in (0, 1) for r in (0, 1)], dim=-1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """MONAI's BasicLayer: `depth` blocks alternating plain and shifted windows, then a merge.
    Works on channels-first maps [B, C, H, W]."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window: Sequence[int],
        mlp_ratio: float,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.window = tuple(window)
        self.shift = tuple(i // 2 for i in window)
        no_shift = tuple(0 for _ in window)
        shifts = [no_shift if i % 2 == 0 else self.shift for i in range(depth)]
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, self.window, shift, mlp_ratio, qkv_bias) for shift in shifts
        )
        self.downsample = PatchMerging(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        window, shift = window_and_shift((h, w), self.window, self.shift)
        hp = -(-h // window[0]) * window[0]
        wp = -(-w // window[1]) * window[1]
        mask = shifted_window_mask(hp, wp, window, shift, x.device)
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x, mask)
        x = self.downsample(x.reshape(b, h, w, -1))
        return x.permute(0, 3, 1, 2)


class ConvUnit(nn.Sequential):
    """MONAI's `Convolution` with no norm, activation or dropout: a bias-free conv named `conv`."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.add_module(
            "conv", nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        )


class ResidualConvBlock(nn.Module):
    """MONAI's UnetResBlock with equal in/out channels and stride 1: two 3x3 convs with affine-free
    instance norm and LeakyReLU(0.01), plus the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvUnit(channels, 3)
        self.conv2 = ConvUnit(channels, 3)
        self.lrelu = nn.LeakyReLU(negative_slope=0.01)
        self.norm1 = nn.InstanceNorm2d(channels)
        self.norm2 = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lrelu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.lrelu(out + x)


class StageConv(nn.Module):
    """MONAI's UnetrBasicBlock(res_block=True): the residual block under the name `layer`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layer = ResidualConvBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class PatchEmbed(nn.Module):
    """Non-overlapping patches projected by a strided conv; odd sizes padded right/bottom."""

    def __init__(self, patch_size: Sequence[int], in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = self.patch_size
        if w % pw:
            x = F.pad(x, (0, pw - w % pw))
        if h % ph:
            x = F.pad(x, (0, 0, 0, ph - h % ph))
        return self.proj(x)


class SwinTransformer2d(nn.Module):
    """MONAI's `SwinTransformer(spatial_dims=2, patch_norm=False, downsample="merging")`, no
    dropout or drop path (inference). `use_v2` adds the residual conv block before each stage."""

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        window_size: Sequence[int],
        patch_size: Sequence[int],
        depths: Sequence[int],
        num_heads: Sequence[int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        use_v2: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError("MONAI's SwinTransformer has exactly four stages")
        self.use_v2 = use_v2
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        for i in range(4):
            dim = embed_dim * 2**i
            stage = SwinStage(dim, depths[i], num_heads[i], window_size, mlp_ratio, qkv_bias)
            setattr(self, f"layers{i + 1}", nn.ModuleList([stage]))
            if use_v2:
                setattr(self, f"layers{i + 1}c", nn.ModuleList([StageConv(dim)]))
        self.num_features = embed_dim * 2**4  # width of the last map, after its merge

    @staticmethod
    def proj_out(x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """LayerNorm over channels without parameters (MONAI's `proj_out`)."""
        if not normalize:
            return x
        return F.layer_norm(x.permute(0, 2, 3, 1), [x.shape[1]]).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor, normalize: bool = True) -> list[torch.Tensor]:
        """[B, C, H, W] -> five maps at strides 2, 4, 8, 16, 32 of the input."""
        x = self.patch_embed(x)
        outs = [self.proj_out(x, normalize)]
        for i in range(1, 5):
            if self.use_v2:
                x = getattr(self, f"layers{i}c")[0](x.contiguous())
            x = getattr(self, f"layers{i}")[0](x.contiguous())
            outs.append(self.proj_out(x, normalize))
        return outs
