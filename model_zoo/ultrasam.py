"""UltraSam (Meyer et al., 2025): SAM ViT-B trained on US-43d, 280k ultrasound masks.

The released `UltraSam.pth` is an mmengine checkpoint of an mmdet SAM detector whose backbone
is mmpretrain's `ViTSAM` (SAM's ViT-B encoder with its neck as `channel_reduction`); the
backbone is mapped key by key onto timm's samvit, the same architecture as `sam-vitb`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from model_zoo.sam import NECK_MEAN, PRENECK_MEAN, SamViTBAdapter, mmengine_backbone, vitsam_to_timm
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import register_model
from ultrabench_eval.models.adapter import ModelInfo, count_parameters
from ultrabench_eval.models.downloads import download_url
from ultrabench_eval.models.weights import MMENGINE_RUNNER_STATE

ULTRASAM_URL = "https://s3.unistra.fr/camma_public/github/ultrasam/UltraSam.pth"


@register_model("ultrasam")
class UltraSam(SamViTBAdapter):
    """UltraSam image encoder, 1024 px. Default pooling: the average of the last block's tokens
    before the neck (768-d), as UltraSam's own classification configs read the backbone.

    Patch tokens (from SamViTBAdapter): the neck output, the 256-d image embedding UltraSam's
    mask decoder reads, 64 x 64 at 1024 px; their mean is the 'mean' pooling, not the default
    'preneck-mean'."""

    layouts = ("ultrasam-mmdet",)
    # a full Runner checkpoint (message_hub, optimizer, param_schedulers) is read too: mmengine's
    # objects become inert placeholders and the entries holding them are dropped, no code runs
    inert_globals = MMENGINE_RUNNER_STATE
    poolings = (PRENECK_MEAN, NECK_MEAN)  # type: ignore[assignment]

    def __init__(self, name: str = "ultrasam") -> None:
        super().__init__(name, model_name="samvit_base_patch16")

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="SAM ViT-B/16 image encoder (mmpretrain ViTSAM arch base, run as timm "
            "samvit_base_patch16): 12 blocks, 768-d, windowed (14x14) attention with global "
            "blocks 2/5/8/11, decomposed relative positions, conv neck to 256 x 64 x 64; 1024 px",
            pretraining_data="SAM ViT-B (SA-1B) fine-tuned on US-43d: 43 open ultrasound "
            "segmentation datasets, ~280k masks, point and box prompts",
            weights_source=ULTRASAM_URL,
            license="CC-BY-NC-SA-4.0",
            citation="Meyer et al., UltraSam: a foundation model for ultrasound using large "
            "open-access segmentation datasets, IJCARS 2025",
            family="SAM",
            params=count_parameters(self.meta_model()),
            notes=(
                "CAMMA-public/UltraSam. Input: 1024 px, bilinear, mean (123.675, 116.28, 103.53) "
                "/ std (58.395, 57.12, 57.375) on 0-255 (= ImageNet's on [0, 1]); UltraSam "
                "resizes keeping the aspect ratio and pads to 1024, a plain resize for square "
                "images. Poolings: 'preneck-mean' (default, 768-d) = average of the last block's "
                "tokens, as configs/_base_/models/sam_classification.py reads the backbone "
                "(ViTSAM out_channels=0, out_type avg_featmap); 'mean' = average of the neck "
                "output (256-d), the embedding the mask decoder reads. Which UltraSAM the US-JEPA "
                "paper used is unverified: its text cites meyer_ultrasam_2025 (this model) but "
                "its bibliography holds Jiang et al.'s UltraSAM (ESWA 2026). The released file "
                "was not downloadable where this adapter was written: its key layout is derived "
                "from the repository's configs and conversion scripts. A full mmengine Runner "
                "checkpoint (message_hub with mmengine objects, optimizer, schedulers) is read "
                "without building those objects: only the tensors of 'state_dict' are used."
            ),
            extra={"url": ULTRASAM_URL, "input_px": 1024},
        )

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        backbone = mmengine_backbone(checkpoint)
        if backbone is None:
            raise UserError(
                f"{source} is not an UltraSam checkpoint: expected an mmengine file "
                "{'state_dict': {'backbone.*': ViTSAM, 'prompt_encoder.*', 'decoder.*', "
                "'bbox_head.*'}, 'meta': ...} (UltraSam.pth)"
            )
        # prompt_encoder.*, decoder.* and bbox_head.* (the mask decoder) are not benchmarked
        return vitsam_to_timm(backbone, source)

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        downloaded = download_url(ULTRASAM_URL, "ultrasam")
        path = downloaded.path
        return self.model_from_file(path, str(path), f"weights file {path}"), downloaded.weights_id
