"""EchoJEPA-L (Munim et al., 2026): a V-JEPA 2 ViT-L/16 video encoder trained on echocardiograms.

The public checkpoint, EchoJEPA-L-K (`vitl-kinetics-pt220-an55.pt`), is a full training
checkpoint of EchoJEPA's `app/vjepa/train.py`. EchoJEPA's frozen evaluation loads its
`target_encoder` (the EMA encoder: every ViT-L evaluation and inference config loads the
encoder with `checkpoint_key: target_encoder`), with the `module.` (DistributedDataParallel)
and `backbone.` (MultiSeqWrapper) prefixes removed. The online `encoder` in the same file is
not what they evaluate, so it is not accepted.

A still image enters as a clip of the image repeated over 16 frames: the clip length EchoJEPA
was pretrained and probed with (`frames_per_clip: 16`), and what V-JEPA 2 itself does for
images (`img_as_video_nframes: 16` in configs/eval/vitl/in1k.yaml, the forward pre-hook in
evals/image_classification_frozen/modelcustom/vit_encoder.py). The 8 tubelets then carry
identical pixels and differ only by their temporal rotary phase, as in that evaluation.
Pooling: EchoJEPA probes all 1568 tokens with a trained attentive probe; a linear probe here
gets their mean (`mean`, after the final LayerNorm).

Patch tokens: the same final-LayerNormed tokens of the clip, [B, T' * h * w, D] ordered time,
row, column, reshaped to [B, T', h * w, D] and averaged over the T' tubelets (8 at 16 frames),
so one 1024-d token per 16 x 16 patch on the 14 x 14 grid at 224 px (the reduced one-tubelet
test variants keep that grid). Every position has the same T' tubelets, so the mean of these
tokens is the mean of all clip tokens: the `mean` pooling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from model_zoo.vjepa2_vit import VIT_LARGE, VJEPA2VisionTransformer
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
    patch_grid,
)

CHECKPOINT_KEY = "target_encoder"
# Wrapper prefixes of the saved encoders, outermost first: DistributedDataParallel, then
# MultiSeqWrapper. Their evaluation removes both (str.replace); keys without them load too.
KEY_PREFIXES = ("module.", "backbone.")
CLIP_FRAMES = 16  # frames_per_clip of EchoJEPA's pretraining and probes
REDUCED_CLIP_FRAMES = 2  # reduced test variants: one tubelet; the tests run longer clips
FILE_NAME = "vitl-kinetics-pt220-an55.pt"
DRIVE_FOLDER = "https://drive.google.com/drive/u/0/folders/17ouOsb_lSf7sfhuM0vOZu2s6xMMtAo_A"


def echojepa_encoder_state(checkpoint: Mapping[str, Any], source: str) -> dict:
    """The `target_encoder` of an EchoJEPA / V-JEPA 2 training checkpoint, prefixes removed."""
    state = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(state, Mapping) or not state:
        raise UserError(
            f"{source} has no '{CHECKPOINT_KEY}' state dict (top-level keys: "
            f"{sorted(map(str, checkpoint))[:8]}); expected an EchoJEPA training checkpoint such "
            f"as {FILE_NAME}, whose EMA target encoder EchoJEPA evaluates"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        for prefix in KEY_PREFIXES:
            name = name.removeprefix(prefix)
        if name in out:
            raise UserError(f"{source}: '{CHECKPOINT_KEY}' holds '{name}' twice (key {key})")
        out[name] = value
    return out


@register_model("echojepa-l")
class EchoJEPAL(CheckpointAdapter):
    """EchoJEPA-L-K: V-JEPA 2 ViT-L/16 (RoPE, tubelet 2), 224 px, still images as 16-frame
    clips, mean of all final-normed tokens. Loads the released training checkpoint's
    `target_encoder` (weights on Google Drive: pass the file with --weights)."""

    layouts = ("echojepa-l-train",)
    poolings = ("mean",)
    mean_of_tokens: ClassVar[str | None] = "mean"
    num_frames = CLIP_FRAMES
    patch_size = 16
    tubelet_size = 2

    def __init__(self, name: str = "echojepa-l") -> None:
        super().__init__(name)

    @property
    def info(self) -> ModelInfo:
        height, width = self.input_spec.size
        tokens = (self.num_frames // 2) * (height // 16) * (width // 16)
        return ModelInfo(
            architecture=(
                "V-JEPA 2 ViT-L/16 video encoder (3D RoPE, tubelet 2, 24 blocks, 1024-d), "
                f"image repeated into a {self.num_frames}-frame 224 px clip, {tokens} tokens"
            ),
            pretraining_data=(
                "MIMIC-IV-Echo (about 525K echocardiogram videos), V-JEPA latent prediction: "
                "220 epochs + 55-epoch anneal, initialised from V-JEPA 2 ViT-L (VideoMix22M)"
            ),
            weights_source=(
                f"not on a hub: Google Drive folder {DRIVE_FOLDER} (linked from the "
                f"github.com/alif-munim/EchoJEPA README), file checkpoints/{FILE_NAME}"
            ),
            license="code MIT (EchoJEPA / V-JEPA 2); no licence stated for the weights",
            citation=(
                "Munim et al., EchoJEPA: A Latent Predictive Foundation Model for "
                "Echocardiography, arXiv:2602.02603, 2026; Assran et al., V-JEPA 2, "
                "arXiv:2506.09985, 2025"
            ),
            family="JEPA",
            params=count_parameters(self.meta_model()),
            notes=(
                "Loads 'target_encoder' (module./backbone. removed), as EchoJEPA's frozen "
                "evaluation does. Still image -> clip of 16 identical frames (V-JEPA 2's image "
                "evaluation, img_as_video_nframes 16); features = mean of all tokens, whereas "
                "EchoJEPA trains an attentive probe on them. RoPE keeps V-JEPA 2's tiled "
                "frequencies (not V-JEPA 2.1's interleaved ones). Preprocessing: ImageNet "
                "mean/std and bilinear resize from their eval transform, whose short-side "
                "256 + centre crop 224 is replaced by the harness's plain resize. Not verified "
                "against the released file (Google Drive is not reachable here): its key layout "
                "is taken from the training code."
            ),
            extra={"clip_frames": self.num_frames, "tubelet_size": 2, "tokens": tokens},
        )

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(
            size=(224, 224),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            channels=3,
            interpolation="bilinear",
        )

    @property
    def embed_dims(self) -> dict[str, int]:
        return {"mean": VIT_LARGE["embed_dim"]}

    @property
    def token_dim(self) -> int:
        return VIT_LARGE["embed_dim"]

    @property
    def token_grid(self) -> tuple[int, int]:
        return patch_grid(self.input_spec.size, self.patch_size)

    def reduced(self, depth: int) -> EchoJEPAL:
        """Fewer blocks and a one-tubelet clip: 16 frames make 1568 tokens, too slow for the
        contract's CPU runs (tests/test_model_zoo_echojepa.py runs longer clips)."""
        clone = super().reduced(depth)
        clone.num_frames = min(self.num_frames, REDUCED_CLIP_FRAMES)
        return clone  # type: ignore[return-value]

    def build_model(self) -> torch.nn.Module:
        kwargs = dict(VIT_LARGE)
        if self.depth:
            kwargs["depth"] = self.depth
        return VJEPA2VisionTransformer(
            patch_size=self.patch_size, tubelet_size=self.tubelet_size, **kwargs
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        return echojepa_encoder_state(checkpoint, source)

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed images [B, C, H, W] -> clips [B, C, frames, H, W] of repeated frames."""
        return x.unsqueeze(2).expand(-1, -1, self.num_frames, -1, -1)

    def _clip_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The clip's final-LayerNormed tokens [B, T' * h * w, D], ordered time, row, column."""
        assert self.model is not None, "load() first"
        return self.model(self.clip(x))

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mean": self._clip_tokens(x).mean(dim=1)}

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        """The clip's final-normed tokens averaged over its tubelets: [B, h * w, D]."""
        tokens = self._clip_tokens(x)
        grid = patch_grid(x.shape, self.patch_size)
        per_frame = tokens.unflatten(1, (-1, grid[0] * grid[1]))  # [B, T', h * w, D]
        return PatchTokens(per_frame.mean(dim=1), grid)
