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
    PatchTokens,
    count_parameters,
    grid_tokens,
    map_tokens,
    token_poolings,
)
from ultrabench_eval.models.downloads import first_line
from ultrabench_eval.models.weights import select_state_dict, state_dict_sha256, strip_prefixes

TIMM_PREFIX = "timm:"
# Wrappers that training code puts around a timm state dict.
_CHECKPOINT_KEYS = ("state_dict", "model", "model_state", "state_dict_ema", "model_ema")
_KEY_PREFIXES = ("module.", "_orig_mod.")
# how close forward_head(pre_logits=True) must be to the plain mean of the final map for "avg"
# to count as the mean of the tokens (float rounding of an average pool, nothing more)
_HEAD_MEAN_TOLERANCE = 1e-5


class TimmAdapter(CheckpointAdapter):
    """Any timm model with its pretrained config: input size, mean/std, interpolation.

    Weights come from the Hugging Face hub through timm (`load()`), or from a local file in
    timm's key layout (`load(path)`: .safetensors or a torch checkpoint, optionally wrapped in
    `state_dict`/`model` and prefixed with `module.`). Poolings: ViTs give `cls` and `mean` (mean
    of patch tokens), the default being the model's own `global_pool`; other models give `avg`,
    the model's own pooled pre-logits.

    Patch tokens are the output of timm's `forward_features`, the model's final spatial output:
    for ViT-like models (`num_prefix_tokens` set, a [B, prefix + N, D] sequence) the tokens after
    the final norm without the CLS/register/distillation tokens, on the patch grid (derived from
    the input for `dynamic_img_size` models); timm ViTs built with average pooling (e.g. BEiT,
    EVA) norm after pooling (`fc_norm`), so their tokens are the last block's, un-normed, as
    their "mean" pooling here is. For other models (CNNs, hierarchical transformers) the final
    feature map, [B, C, h, w], or [B, h, w, C] for models whose `output_fmt` is NHWC (swin,
    mambaout), flattened row-major. `mean_of_tokens` is "mean" for ViTs, "avg" where the model's
    pooled pre-logits are the plain mean of that map (checked on the model: e.g. ResNets,
    EfficientNets, but not ConvNeXt, whose head norms after pooling), else None.
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

    # --- patch tokens --------------------------------------------------------------------------
    def _final_shape(self) -> tuple[int, ...]:
        """The shape of `forward_features` at the input size for a batch of 1, by shape
        inference on the meta device (no weights, no arithmetic)."""

        def infer() -> tuple[int, ...]:
            model = self.meta_model()
            training = model.training
            model.eval()  # shapes as at inference (e.g. no patch dropout)
            try:
                with torch.device("meta"), torch.no_grad():
                    x = torch.empty(1, 3, *self.input_spec.size)
                    return tuple(model.forward_features(x).shape)
            finally:
                model.train(training)

        return self.memo("final_shape", infer)

    def _meta_tokens(self) -> PatchTokens:
        """The patch tokens of a batch of 1, shapes only (on the meta device)."""
        features = torch.empty(self._final_shape(), device="meta")
        return _tokens_of(self.meta_model(), features, self.input_spec.size)

    @property
    def token_dim(self) -> int:
        return int(self._meta_tokens().tokens.shape[-1])

    @property
    def token_grid(self) -> tuple[int, int]:
        return self._meta_tokens().grid

    @property
    def mean_of_tokens(self) -> str | None:  # type: ignore[override]
        model = self.model if self.model is not None else self.meta_model()
        shape = self._final_shape()
        if getattr(model, "num_prefix_tokens", None) is not None and len(shape) == 3:
            return "mean"  # the "mean" pooling averages exactly these tokens
        if "avg" not in self.poolings:
            return None
        try:
            return "avg" if self.memo("head_is_mean", self._head_is_mean) else None
        except NotImplementedError:  # no patch tokens (a sequence without a known grid)
            return None

    def _head_is_mean(self) -> bool:
        """Whether forward_head(pre_logits=True) is the plain mean of the final map (a pooling
        and flatten only, no norm or projection after it), tried on a random map: on the loaded
        model, else on a fixed-seed random build (the answer depends on the head's structure)."""
        model = self.model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if model is None:
                model = self.build_model().eval()
            param = next(model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            dtype = param.dtype if param is not None else torch.float32
            features = torch.randn((2, *self._final_shape()[1:]), device=device, dtype=dtype)
        with torch.no_grad():
            pooled = model.forward_head(features, pre_logits=True)
        mean = _tokens_of(model, features, self.input_spec.size).tokens.mean(dim=1)
        return pooled.shape == mean.shape and torch.allclose(
            pooled.float(), mean.float(), rtol=_HEAD_MEAN_TOLERANCE, atol=_HEAD_MEAN_TOLERANCE
        )

    # --- inference ----------------------------------------------------------------------------
    def _final_features(self, x: torch.Tensor) -> torch.Tensor:
        """timm's `forward_features`: both the poolings and the patch tokens come from it."""
        assert self.model is not None, "load() first"
        return self.model.forward_features(x)

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self._final_features(x)
        prefix = getattr(self.model, "num_prefix_tokens", None)
        if prefix is not None and tokens.ndim == 3:
            return token_poolings(tokens, prefix)
        return {"avg": self.model.forward_head(tokens, pre_logits=True)}

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        features = self._final_features(x)
        return _tokens_of(self.model, features, tuple(x.shape[-2:]))


def _is_nhwc(model: torch.nn.Module, shape: tuple[int, ...]) -> bool:
    """Whether a 4-d final map is [B, H, W, C]: the model says so (`output_fmt`, e.g. swin,
    mambaout), or its channels are last and only last."""
    fmt = getattr(model, "output_fmt", None)
    if fmt is not None:
        return str(fmt) == "NHWC"
    width = getattr(model, "num_features", None)
    return shape[1] != width and shape[-1] == width


def _patch_grid(
    model: torch.nn.Module, size: tuple[int, int], shape: tuple[int, ...]
) -> tuple[int, int]:
    """The patch grid of a token sequence `shape` at input `size`: the patch embedding's
    `grid_size`, or its grid for `size` when the model takes any image size; checked against
    the sequence length (prefix tokens aside)."""
    embed = getattr(model, "patch_embed", None) or getattr(model, "stem", None)
    grid = getattr(embed, "grid_size", None)
    if grid is not None and getattr(model, "dynamic_img_size", False):
        grid = embed.dynamic_feat_size(tuple(size))
    prefix = getattr(model, "num_prefix_tokens", None) or 0
    if grid is None or shape[1] - prefix != int(grid[0]) * int(grid[1]):
        raise NotImplementedError(
            f"timm model {type(model).__name__}: a sequence of {shape[1]} tokens "
            f"({prefix} prefix) has no known patch grid"
        )
    return int(grid[0]), int(grid[1])


def _tokens_of(
    model: torch.nn.Module, features: torch.Tensor, size: tuple[int, int]
) -> PatchTokens:
    """timm `forward_features` output -> patch tokens (see `TimmAdapter`); `size` is the
    input's (height, width), used for sequences only."""
    if features.ndim == 3:
        shape = tuple(features.shape)
        prefix = getattr(model, "num_prefix_tokens", None) or 0
        return grid_tokens(features, prefix, _patch_grid(model, size, shape))
    if features.ndim == 4:
        if _is_nhwc(model, tuple(features.shape)):
            h, w = features.shape[1:3]
            return PatchTokens(features.flatten(1, 2), (int(h), int(w)))
        return map_tokens(features)
    raise NotImplementedError(
        f"timm model {type(model).__name__}: forward_features gives {features.ndim}-d output"
    )


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
