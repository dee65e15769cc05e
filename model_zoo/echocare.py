"""EchoCare (Zhang et al., 2025): an ultrasound foundation model on a MONAI SwinUNETR-v2 encoder.

The released `echocare_encoder.pth` is a flat state dict of MONAI's 2-D `SwinTransformer`
(embed 128, patch 2, window 8, depths 2-2-18-2, heads 4-8-16-32, `use_v2=True`) plus the
pre-training `mask_token`; it is rebuilt here without MONAI (`model_zoo.swin_monai`).

Patch tokens: the last of the five maps the encoder returns (after the fourth stage and its
patch merge, through MONAI's parameter-free channel LayerNorm `proj_out`), the map the `avg`
pooling averages: 2048-d on an 8 x 8 grid at 256 px (patch 2, then four 2 x 2 merges: stride 32).
`avg` is exactly their mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from model_zoo.swin_monai import SwinTransformer2d
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

# SwinTransformer arguments of every published loader of echocare_encoder.pth.
ECHOCARE_ARCH: dict[str, Any] = {
    "in_chans": 3,
    "embed_dim": 128,
    "window_size": (8, 8),
    "patch_size": (2, 2),
    "depths": (2, 2, 18, 2),
    "num_heads": (4, 8, 16, 32),
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "use_v2": True,
}
# Pre-training only: the masked-image-modelling token, not part of the encoder.
_DROPPED = ("mask_token",)
# Keys that identify the file: the stem and the v2 residual conv block of the first stage.
_SIGNATURE = ("patch_embed.proj.weight", "layers1c.0.layer.conv1.conv.weight")
_SHAREPOINT = (
    "https://cashkisi-my.sharepoint.com/:u:/g/personal/cares-copilot_cair-cas_org_hk/"
    "IQBgK6rK8TAtQq8IjADsgp52AbmyC03ubimwqr3qh8ZH6DI?e=ABYQzg"
)


def echocare_encoder_state(checkpoint: Mapping[str, Any], source: str) -> dict:
    """The encoder state dict of an `echocare_encoder.pth`-style file: flat MONAI keys, with the
    pre-training `mask_token` (present in the release) dropped."""
    if not all(isinstance(checkpoint.get(key), torch.Tensor) for key in _SIGNATURE):
        raise UserError(
            f"{source} is not an EchoCare encoder: expected the flat MONAI SwinTransformer state "
            f"dict of echocare_encoder.pth (keys {', '.join(_SIGNATURE)}); top-level keys are "
            f"{sorted(checkpoint)[:6]}"
        )
    return {k: v for k, v in checkpoint.items() if k not in _DROPPED}


@register_model("echocare")
class EchoCare(CheckpointAdapter):
    """EchoCare encoder at 256 px; features: global average of the last stage's map (2048-d,
    after MONAI's parameter-free channel LayerNorm), as the downstream heads pool it."""

    layouts = ("echocare-encoder",)
    poolings = ("avg",)
    mean_of_tokens: ClassVar[str | None] = "avg"

    def __init__(self, name: str = "echocare") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture=(
                "MONAI 2-D SwinTransformer (SwinUNETR-v2 encoder, use_v2 residual conv stages): "
                "embed 128, patch 2, window 8, depths 2-2-18-2, heads 4-8-16-32, 256 px; "
                "5 maps up to 2048 x 8 x 8"
            ),
            pretraining_data=(
                "EchoCareData: 4.5M ultrasound images, 23 centres on 5 continents, 38 devices; "
                "masked image modelling with a hierarchical (structured contrastive) classifier"
            ),
            weights_source=(
                "not on a model hub: echocare_encoder.pth via the SharePoint link of the "
                f"FETUS 2026 baseline README ({_SHAREPOINT}); the CAIR-HKISI/EchoCare README "
                "links huggingface.co/CAIR-HKISI, where no EchoCare model repo was found"
            ),
            license="not stated (no licence in the CAIR-HKISI/EchoCare snapshot; check it)",
            citation=(
                "Zhang et al., A Fully Open and Generalizable Foundation Model for Ultrasound "
                "Clinical Applications, arXiv:2509.11752, 2025"
            ),
            family="EchoCare",
            params=count_parameters(self.meta_model()),
            notes=(
                "Architecture and file format verified against MONAI 1.6.1 and the published "
                "loaders (challenge baselines); the official EchoCare code could not be read. "
                "Unverified: input normalisation ([0, 1] without mean/std, as the CAIR-linked "
                "challenge baselines feed it), the pooling of the paper's classification probes "
                "(global average of the last map here) and the mask_token shape."
            ),
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(256, 256),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            channels=3,
            interpolation="bilinear",
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        return {"avg": int(self.meta_model().num_features)}

    @property
    def token_dim(self) -> int:
        return int(ECHOCARE_ARCH["embed_dim"]) * 2**4  # doubled by each of the four merges

    @property
    def token_grid(self) -> tuple[int, int]:
        """The patch embedding and each of the four merges pad odd sizes up (MONAI's ceil)."""
        grid = []
        for size, patch in zip(self.input_spec.size, ECHOCARE_ARCH["patch_size"], strict=True):
            side = -(-size // patch)
            for _ in range(4):
                side = -(-side // 2)
            grid.append(side)
        return (grid[0], grid[1])

    def build_model(self) -> torch.nn.Module:
        arch = dict(ECHOCARE_ARCH)
        if self.depth:
            arch["depths"] = tuple(min(d, self.depth) for d in arch["depths"])
        return SwinTransformer2d(**arch)

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return echocare_encoder_state(checkpoint, source)

    def _last_map(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2048, H/32, W/32]: the last stage's map after its merge, channel-normalised."""
        assert self.model is not None, "load() first"
        return self.model(x)[-1]

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"avg": self._last_map(x).mean(dim=(2, 3))}

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        return map_tokens(self._last_map(x))
