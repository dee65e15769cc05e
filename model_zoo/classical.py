"""Weight-free baselines: raw pixels and a HOG texture descriptor, both computed on the device."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import Adapter, InputSpec, ModelInfo, PatchTokens


class WeightFreeAdapter(Adapter):
    """An adapter with nothing to load: its identity is its name, version and input spec."""

    def load(self, weights: str | None = None) -> WeightFreeAdapter:
        if weights is not None:
            raise UserError(f"model '{self.name}' has no weights; drop --weights for it")
        self._weights_id = "none"
        return self


@register_model("pixels")
class PixelsAdapter(WeightFreeAdapter):
    """Raw intensities, area-downsampled to 32x32: what a probe gets with no encoder at all."""

    name = "pixels"
    poolings = ("raw",)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="identity on 32x32 area-downsampled grayscale intensities (1024-d)",
            pretraining_data="none",
            weights_source="none (weight-free)",
            license="MIT",
            citation="",
            family="baseline",
            params=0,
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(size=(32, 32), mean=(0.0,), std=(1.0,), channels=1, interpolation="area")

    @property
    def embed_dims(self) -> dict[str, int]:
        return {"raw": 32 * 32}

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"raw": x.flatten(1)}

    # Tokens: the 32x32 intensities cut into 4x4-pixel patches, as a ViT's patch embedding would
    # see them, with no weights: an 8x8 grid of 16-d tokens.
    patch = 4

    @property
    def token_dim(self) -> int:
        return self.patch * self.patch

    @property
    def token_grid(self) -> tuple[int, int]:
        return (32 // self.patch, 32 // self.patch)

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        patches = F.unfold(x, kernel_size=self.patch, stride=self.patch)  # [B, p*p, h*w]
        return PatchTokens(patches.transpose(1, 2), self.token_grid)


@register_model("hog")
class HogAdapter(WeightFreeAdapter):
    """Histogram of oriented gradients (Dalal & Triggs), the layout of `skimage.feature.hog`:
    9 unsigned orientations, 16x16-pixel cells, 2x2-cell blocks, L2-Hys, at 128x128 (1764-d)."""

    name = "hog"
    poolings = ("hog",)
    orientations = 9
    cell = 16
    block = 2

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="HOG, 9 orientations, 16 px cells, 2x2 blocks, L2-Hys, 128 px (1764-d)",
            pretraining_data="none",
            weights_source="none (weight-free)",
            license="MIT",
            citation="Dalal & Triggs, Histograms of Oriented Gradients for Human Detection, "
            "CVPR 2005",
            family="baseline",
            params=0,
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(128, 128), mean=(0.0,), std=(1.0,), channels=1, interpolation="bilinear"
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        cells = 128 // self.cell - self.block + 1
        return {"hog": cells * cells * self.block * self.block * self.orientations}

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hog": hog(x[:, 0], self.orientations, self.cell, self.block)}

    # Tokens: the descriptor's normalised blocks in place, one per block position (a 7x7 grid
    # of overlapping 2x2-cell blocks, each 2 * 2 * 9 = 36-d): the pooled vector is exactly
    # these tokens flattened.
    @property
    def token_dim(self) -> int:
        return self.block * self.block * self.orientations

    @property
    def token_grid(self) -> tuple[int, int]:
        side = 128 // self.cell - self.block + 1
        return (side, side)

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        descriptor = hog(x[:, 0], self.orientations, self.cell, self.block)
        h, w = self.token_grid
        return PatchTokens(descriptor.view(len(x), h * w, self.token_dim), (h, w))


def hog(images: torch.Tensor, orientations: int, cell: int, block: int) -> torch.Tensor:
    """HOG descriptors of a batch of 2-D images [B, H, W] -> [B, D].

    Float64 throughout: orientation binning is a hard threshold, and the reference
    (scikit-image) computes in double precision.
    """
    x = images.double()
    g_row = torch.zeros_like(x)
    g_col = torch.zeros_like(x)
    g_row[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    g_col[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    magnitude = torch.hypot(g_row, g_col)
    orientation = torch.rad2deg(torch.atan2(g_row, g_col)) % 180.0
    width = 180.0 / orientations
    lower = torch.arange(orientations, device=x.device, dtype=x.dtype) * width
    upper = (torch.arange(orientations, device=x.device, dtype=x.dtype) + 1) * width
    o = orientation.unsqueeze(1)
    in_bin = (o >= lower.view(1, -1, 1, 1)) & (o < upper.view(1, -1, 1, 1))
    votes = in_bin.to(x.dtype) * magnitude.unsqueeze(1)  # [B, n, H, W]
    cells = F.avg_pool2d(votes, kernel_size=cell, stride=cell)  # mean over each cell
    blocks = cells.unfold(2, block, 1).unfold(3, block, 1)  # [B, n, R, C, b, b]
    blocks = blocks.permute(0, 2, 3, 4, 5, 1)  # block row, block col, cell row, cell col, bin
    eps_sq = 1e-5**2
    norm = blocks.pow(2).sum(dim=(3, 4, 5), keepdim=True).add(eps_sq).sqrt()
    blocks = (blocks / norm).clamp(max=0.2)
    norm = blocks.pow(2).sum(dim=(3, 4, 5), keepdim=True).add(eps_sq).sqrt()
    return (blocks / norm).flatten(1).float()
