"""The V-JEPA 2 video ViT encoder (Assran et al., 2025), the backbone EchoJEPA trains.

Written from facebookresearch/vjepa2 `src/models/vision_transformer.py` and
`src/models/utils/{modules,patch_embed}.py` (the RoPE configuration: `use_rope=True`, no
absolute position embedding). Module names follow the official ones, so an official state dict
(after its wrapper prefixes are removed) loads key for key:

    patch_embed.proj          Conv3d(3, D, kernel = stride = (tubelet, patch, patch))
    blocks.{i}.norm1, .attn.qkv, .attn.proj, .norm2, .mlp.fc1, .mlp.fc2
    norm                      final LayerNorm (eps 1e-6)

Rotary position embedding, as V-JEPA 2 computes it: each head's dimension is split into three
equal even parts, 2 * ((head_dim // 3) // 2) wide, rotated by the token's tubelet (time),
patch-row and patch-column index in that order; the remaining head_dim - 3 * that dimensions
are not rotated (ViT-L: 64 = 3 x 20 + 4). Within a part of width d, frequency i (i < d / 2) is
10000 ** (-i / (d / 2)) and positions are integer grid indices (not rescaled). V-JEPA 2 tiles
the d / 2 angles twice along the part ([a0..a(d/2-1), a0..a(d/2-1)]) while rotating adjacent
pairs (2k, 2k + 1), so the two members of a pair turn by different angles: not an exact
rotation. The official code keeps this for compatibility with its released weights (see the
note at `rotate_queries_or_keys` and vjepa2 PR #15); V-JEPA 2.1 uses the standard pairwise
layout (`repeat_interleave`). `interleaved_rope=False` is V-JEPA 2, `True` is V-JEPA 2.1's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# vjepa2 src/models/vision_transformer.py vit_large (qkv_bias=True, LayerNorm eps 1e-6, GELU MLP).
VIT_LARGE = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0}
ROPE_BASE = 10000.0


def rope_rotate(
    x: torch.Tensor, positions: torch.Tensor, interleaved: bool = False
) -> torch.Tensor:
    """Rotate the last dimension of x [..., N, d] (d even) by integer positions [N].

    interleaved=False reproduces V-JEPA 2 (angles tiled twice along d), True the standard layout
    in which both members of each adjacent pair share one angle (V-JEPA 2.1)."""
    half = x.shape[-1] // 2
    # Same operation order as vjepa2 (arange, divide, reciprocal power), in x's dtype.
    omega = torch.arange(half, dtype=x.dtype, device=x.device)
    omega = omega / (half * 1.0)
    omega = 1.0 / ROPE_BASE**omega
    angles = positions.to(x.dtype)[:, None] * omega[None, :]  # [N, d/2]
    if interleaved:
        angles = angles.repeat_interleave(2, dim=-1)
    else:
        angles = torch.cat([angles, angles], dim=-1)
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    turned = torch.stack((-x2, x1), dim=-1).flatten(-2)  # (x0, x1) -> (-x1, x0) per pair
    return x * angles.cos() + turned * angles.sin()


def grid_positions(
    frames: int, rows: int, cols: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tubelet, row, column) index of every token, in the order the patch embedding flattens
    them: token n = t * rows * cols + r * cols + c."""
    t, r, c = torch.meshgrid(
        torch.arange(frames, device=device),
        torch.arange(rows, device=device),
        torch.arange(cols, device=device),
        indexing="ij",
    )
    return t.flatten(), r.flatten(), c.flatten()


class PatchEmbed3D(nn.Module):
    """Tubelets of `tubelet` frames x `patch` x `patch` pixels -> one token each."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(video)  # [B, D, t, h, w]


class RoPEAttention(nn.Module):
    """Multi-head self-attention with V-JEPA 2's 3D rotary position embedding on q and k."""

    def __init__(self, dim: int, num_heads: int, interleaved_rope: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.axis_dim = 2 * ((head_dim // 3) // 2)  # width rotated per axis (t, h, w)
        self.interleaved_rope = interleaved_rope
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def rotate(self, x: torch.Tensor, positions: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """x [B, heads, N, head_dim]: the time, height and width parts rotated, the rest kept."""
        d = self.axis_dim
        parts = [
            rope_rotate(x[..., i * d : (i + 1) * d], pos, self.interleaved_rope)
            for i, pos in enumerate(positions)
        ]
        return torch.cat([*parts, x[..., len(positions) * d :]], dim=-1)

    def forward(self, x: torch.Tensor, positions: tuple[torch.Tensor, ...]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim]
        q, k = self.rotate(q, positions), self.rotate(k, positions)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1 / sqrt(head_dim), as vjepa2
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, interleaved_rope: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RoPEAttention(dim, num_heads, interleaved_rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, positions: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), positions)
        return x + self.mlp(self.norm2(x))


class VJEPA2VisionTransformer(nn.Module):
    """V-JEPA 2 video encoder (RoPE variant): video [B, C, T, H, W] -> final-normed tokens
    [B, (T / tubelet) * (H / patch) * (W / patch), D], ordered time, row, column.

    Like the official model it holds no position parameters, so the same weights serve any
    clip length and resolution; T, H and W are floored to whole tubelets and patches, as
    the strided convolution does."""

    def __init__(
        self,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        interleaved_rope: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.patch_embed = PatchEmbed3D(patch_size, tubelet_size, in_chans, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, interleaved_rope) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def tokenize(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Video [B, C, T, H, W] -> tokens [B, N, D] and each token's (tubelet, row, column)."""
        if video.ndim != 5:
            raise ValueError(f"expected a video [B, C, T, H, W], got shape {tuple(video.shape)}")
        if video.shape[2] < self.tubelet_size:
            raise ValueError(f"a clip needs at least {self.tubelet_size} frames (one tubelet)")
        grid = self.patch_embed(video)
        frames, rows, cols = grid.shape[2:]
        return grid.flatten(2).transpose(1, 2), grid_positions(frames, rows, cols, grid.device)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x, positions = self.tokenize(video)
        for block in self.blocks:
            x = block(x, positions)
        return self.norm(x)
