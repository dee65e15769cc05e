"""timm models: the generic `timm:<model_name>` adapter, the base of every timm-backed family,
and `random-vit-s`, the random-weight floor every paper should show."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import timm
import torch

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import MODELS, register_model
from ultrabench_eval.models.adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointAdapter,
    InputSpec,
    ModelInfo,
    count_parameters,
    token_poolings,
)
from ultrabench_eval.models.downloads import first_line
from ultrabench_eval.models.weights import select_state_dict, state_dict_sha256, strip_prefixes

TIMM_PREFIX = "timm:"
# Wrappers that training code puts around a timm state dict.
_CHECKPOINT_KEYS = ("state_dict", "model", "model_state", "state_dict_ema", "model_ema")
_KEY_PREFIXES = ("module.", "_orig_mod.")


class TimmAdapter(CheckpointAdapter):
    """Any timm model with its pretrained config: input size, mean/std, interpolation.

    Weights come from the Hugging Face hub through timm (`load()`), or from a local file in
    timm's key layout (`load(path)`: .safetensors or a torch checkpoint, optionally wrapped in
    `state_dict`/`model` and prefixed with `module.`). Poolings: ViTs give `cls` and `mean` (mean
    of patch tokens), the default being the model's own `global_pool`; other models give `avg`,
    the model's own pooled pre-logits.
    """

    version = "1"

    def __init__(self, name: str, model_name: str | None = None) -> None:
        super().__init__(name)
        self.model_name = model_name or name.removeprefix(TIMM_PREFIX)
        if not timm.is_model(self.model_name):
            raise UserError(
                f"unknown timm model '{self.model_name}' (see timm.list_models(), e.g. "
                "timm:vit_small_patch16_224.augreg_in21k)"
            )

    # --- metadata, from the pretrained config (no weights needed) ---------------------------
    def model_kwargs(self) -> dict[str, Any]:
        """Arguments for timm.create_model beyond the name (depth for reduced variants)."""
        return {"depth": self.depth} if self.depth else {}

    @property
    def _cfg(self) -> dict[str, Any]:
        return dict(self.meta_model().pretrained_cfg)

    @property
    def info(self) -> ModelInfo:
        cfg = self._cfg
        hub = cfg.get("hf_hub_id")
        source = f"hf-hub:{hub}" if hub else (cfg.get("url") or "none published")
        return ModelInfo(
            architecture=f"timm {cfg.get('architecture', self.model_name)}",
            pretraining_data=str(cfg.get("tag") or "see the timm model card"),
            weights_source=source,
            license=str(cfg.get("license") or "see the model card"),
            citation=str(cfg.get("paper_ids") or cfg.get("paper_name") or ""),
            family="timm",
            params=count_parameters(self.meta_model()),
        )

    @property
    def input_spec(self) -> InputSpec:
        cfg = self._cfg
        _, height, width = cfg.get("input_size", (3, 224, 224))
        interpolation = cfg.get("interpolation", "bicubic")
        if interpolation not in ("nearest", "bilinear", "bicubic"):
            interpolation = "bicubic"
        return InputSpec(
            size=(int(height), int(width)),
            mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
            channels=3,
            interpolation=interpolation,
        )

    @property
    def poolings(self) -> tuple[str, ...]:  # type: ignore[override]
        model = self.model if self.model is not None else self.meta_model()
        prefix = getattr(model, "num_prefix_tokens", None)
        if prefix is None:
            return ("avg",)
        if prefix == 0:
            return ("mean",)
        own = getattr(model, "global_pool", "token")
        return ("cls", "mean") if own == "token" else ("mean", "cls")

    @property
    def embed_dims(self) -> dict[str, int]:
        width = int(self.meta_model().num_features)
        return {pooling: width for pooling in self.poolings}

    # --- loading ------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        return timm.create_model(self.model_name, pretrained=False, **self.model_kwargs())

    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        state = select_state_dict(checkpoint, _CHECKPOINT_KEYS, source)
        return strip_prefixes(state, _KEY_PREFIXES)

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        try:
            model = timm.create_model(self.model_name, pretrained=True, **self.model_kwargs())
        except Exception as exc:  # hub errors come in many types
            raise UserError(
                f"cannot fetch pretrained weights for timm model '{self.model_name}': "
                f"{first_line(exc)} "
                "(check hub access, or pass a local file with --weights)"
            ) from None
        state_hash = state_dict_sha256(model.state_dict())
        return model, f"timm-pretrained:{self.model_name}:sha256={state_hash}"

    def _finish(self, model: torch.nn.Module, weights_id: str) -> None:
        model.reset_classifier(0)  # features only: the head is never used
        super()._finish(model, weights_id)

    # --- inference ----------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.model is not None, "load() first"
        tokens = self.model.forward_features(x)
        prefix = getattr(self.model, "num_prefix_tokens", None)
        if prefix is not None and tokens.ndim == 3:
            return token_poolings(tokens, prefix)
        return {"avg": self.model.forward_head(tokens, pre_logits=True)}


MODELS.register_prefix(TIMM_PREFIX, lambda name: TimmAdapter(name))


@register_model("random-vit-s")
class RandomViTSmall(TimmAdapter):
    """timm ViT-S/16 at 224 px with fixed-seed random weights: no pretraining at all."""

    seed = 0

    def __init__(self, name: str = "random-vit-s") -> None:
        super().__init__(name, model_name="vit_small_patch16_224")

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            architecture="ViT-S/16, 224 px (timm vit_small_patch16_224), CLS + mean pooling",
            pretraining_data="none: timm's random initialisation with seed 0",
            weights_source="none (generated)",
            license="Apache-2.0 (timm)",
            citation="Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021",
            family="baseline",
            params=count_parameters(self.meta_model()),
        )

    def load(self, weights: str | None = None) -> RandomViTSmall:
        if weights is not None:
            raise UserError("random-vit-s has no weights to load; use timm:<model> --weights FILE")
        return self.load_random(self.seed)
