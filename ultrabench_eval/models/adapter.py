"""The adapter contract: one interface in front of every encoder.

An adapter receives a batch of grayscale uint8 images [B, 1, H, W] already on its device,
resizes and normalises it per its `InputSpec`, runs the frozen encoder and returns one float32
[B, D] array per pooling it supports.
"""

from __future__ import annotations

import copy
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from ultrabench_eval.models.layouts import CheckpointLayout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")


@dataclass(frozen=True)
class InputSpec:
    """What the encoder expects: size (height, width), per-channel mean/std on [0, 1] intensities,
    channel count (grayscale is repeated when 3) and resize interpolation."""

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ModelInfo:
    """Metadata shown by `ubench models` and written into every result record."""

    architecture: str
    pretraining_data: str
    weights_source: str
    license: str
    citation: str
    family: str = ""
    params: int | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Adapter(ABC):
    """Base class of every model adapter.

    Subclasses set `info`, `input_spec`, `poolings` (the first is the default) and implement
    `load` and `forward_features`.
    """

    name: str = ""
    version: ClassVar[str] = "1"
    poolings: tuple[str, ...] = ("cls", "mean")

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self.device = torch.device("cpu")
        self._weights_id: str | None = None

    # --- metadata -------------------------------------------------------------------------
    @property
    @abstractmethod
    def info(self) -> ModelInfo: ...

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec: ...

    @property
    def default_pooling(self) -> str:
        return self.poolings[0]

    @property
    def embed_dims(self) -> dict[str, int]:
        """The documented feature width D of every pooling."""
        raise NotImplementedError(f"{type(self).__name__} does not document its embed_dims")

    def checkpoint_layouts(self) -> list[CheckpointLayout]:
        """Official checkpoint layouts this adapter loads (none for weight-free models)."""
        return []

    # --- loading --------------------------------------------------------------------------
    @abstractmethod
    def load(self, weights: str | None = None) -> Adapter:
        """Build the encoder and load its weights (a local file when `weights` is given).

        Sets `self._weights_id` to what identifies the weights: a file hash, a hub revision, or
        the recipe of a deterministic initialisation.
        """

    @property
    def loaded(self) -> bool:
        return self._weights_id is not None

    def weights_id(self) -> str:
        if self._weights_id is None:
            raise RuntimeError(f"model '{self.name}' is not loaded: call load() first")
        return self._weights_id

    def to(self, device: torch.device | str) -> Adapter:
        self.device = torch.device(device)
        return self

    def fingerprint(self) -> str:
        """Keys the feature cache: adapter name and version, weights identity, input spec."""
        payload = json.dumps(
            {
                "name": self.name,
                "adapter_version": self.version,
                "weights": self.weights_id(),
                "input_spec": self.input_spec.as_dict(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # --- inference ------------------------------------------------------------------------
    memory_format: torch.memory_format = torch.contiguous_format

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 1, H, W] -> float32 [B, C, h, w], resized and normalised per `input_spec`."""
        return preprocess(images, self.input_spec).contiguous(memory_format=self.memory_format)

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Preprocessed batch -> {pooling: [B, D]} for every pooling in `poolings`."""

    def embed(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 1, H, W] on `self.device` -> {pooling: float32 [B, D]} on that device."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
            raise ValueError("embed expects a uint8 tensor of shape [B, 1, H, W]")
        with torch.inference_mode():
            features = self.forward_features(self.preprocess(images))
        return {k: v.float().reshape(v.shape[0], -1).contiguous() for k, v in features.items()}


def preprocess(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Resize (no crop), scale to [0, 1], repeat channels, normalise."""
    x = images.float().div_(255.0)
    if tuple(x.shape[-2:]) != tuple(spec.size):
        mode = spec.interpolation
        kwargs: dict[str, Any] = {}
        if mode in ("bilinear", "bicubic"):
            kwargs = {"align_corners": False, "antialias": True}
        x = F.interpolate(x, size=spec.size, mode=mode, **kwargs)
        if mode == "bicubic":
            x = x.clamp_(0.0, 1.0)  # bicubic overshoots; images are bounded, as in PIL
    if spec.channels != 1:
        x = x.expand(-1, spec.channels, -1, -1)
    mean = torch.tensor(spec.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TorchAdapter(Adapter):
    """An adapter around one `torch.nn.Module` kept in eval mode."""

    model: torch.nn.Module | None = None

    def to(self, device: torch.device | str) -> TorchAdapter:
        super().to(device)
        if self.model is not None:
            self.model.to(self.device)
        return self

    def optimise(self, compile: bool = False, channels_last: bool = False) -> TorchAdapter:
        """Speed-ups that keep the features: channels-last memory (convolutions) and
        `torch.compile` of the forward pass. Call after `load`."""
        if self.model is None:
            raise RuntimeError(f"model '{self.name}' is not loaded: call load() first")
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.memory_format = torch.channels_last
        if compile:
            # an instance attribute shadows the method: embed then runs the compiled graph
            self.forward_features = torch.compile(self.forward_features)  # type: ignore[method-assign]
        return self

    def _set_model(self, model: torch.nn.Module) -> None:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model.to(self.device)


def token_poolings(tokens: torch.Tensor, num_prefix_tokens: int) -> dict[str, torch.Tensor]:
    """CLS token and mean of patch tokens from a ViT's final (normed) token sequence."""
    out = {"mean": tokens[:, num_prefix_tokens:].mean(dim=1)}
    if num_prefix_tokens > 0:
        out["cls"] = tokens[:, 0]
    return out


class CheckpointAdapter(TorchAdapter):
    """An encoder loaded from a checkpoint in one of its accepted official `layouts` (see
    `ultrabench_eval.models.layouts`), or fetched from where its weights are published.

    Subclasses implement `build_model` (the architecture, `self.depth` blocks when set),
    `convert_checkpoint` (the official keys mapped explicitly onto the model's), `embed_dims`,
    and `load_pretrained` where the weights can be downloaded.
    """

    layouts: tuple[str, ...] = ()  # names of manifests in model_zoo/layouts
    depth: int | None = None  # fewer blocks than published: the reduced variants tests run

    def checkpoint_layouts(self) -> list[CheckpointLayout]:
        from ultrabench_eval.models.layouts import CheckpointLayout

        layouts = [CheckpointLayout.load(name) for name in self.layouts]
        return [layout.reduced(self.depth) for layout in layouts] if self.depth else layouts

    def reduced(self, depth: int) -> CheckpointAdapter:
        """The same adapter with `depth` blocks per repeated group, for fast tests."""
        clone = copy.copy(self)
        clone.__dict__ = {k: v for k, v in self.__dict__.items() if not k.startswith("_memo_")}
        clone.depth = depth
        clone.model = None
        clone._weights_id = None
        return clone

    def memo(self, name: str, compute: Any) -> Any:
        """A per-instance cached value (dropped by `reduced`)."""
        key = f"_memo_{name}"
        if key not in self.__dict__:
            self.__dict__[key] = compute()
        return self.__dict__[key]

    @abstractmethod
    def build_model(self) -> torch.nn.Module:
        """The architecture with random weights, on the current default device."""

    @abstractmethod
    def convert_checkpoint(self, checkpoint: Mapping[str, Any], source: str) -> dict:
        """A checkpoint in an accepted layout -> the state dict of `build_model()`.

        Raises UserError when the file follows none of the accepted layouts.
        """

    def load_pretrained(self) -> tuple[torch.nn.Module, str]:
        """(model, weights id) from where the weights are published: through
        `models.downloads` (a hub file or a URL, cached, its source in the weights id) or
        timm's pretrained loader."""
        from ultrabench_eval.core.errors import UserError

        raise UserError(
            f"the weights of '{self.name}' cannot be downloaded here ({self.info.weights_source}); "
            "pass the checkpoint file with --weights"
        )

    def load_random(self, seed: int = 0) -> CheckpointAdapter:
        """The architecture with its own fixed-seed random initialisation instead of weights:
        a floor for benchmarks, and a model for speed measurements. The global random state is
        left as it was."""
        from ultrabench_eval.models.weights import state_dict_sha256

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.build_model()
        state_hash = state_dict_sha256(model.state_dict())
        self._finish(model, f"random-init:{type(self).__name__}:seed={seed}:sha256={state_hash}")
        return self

    def meta_model(self) -> torch.nn.Module:
        """The architecture on the meta device: shapes and parameter count, no memory."""
        return self.memo("meta_model", self._build_meta)

    def _build_meta(self) -> torch.nn.Module:
        with torch.device("meta"):
            return self.build_model()

    def model_from_file(
        self, path: str | Path, source: str, load_label: str | None = None
    ) -> torch.nn.Module:
        """`build_model()` with the weights of the checkpoint file `path` (any accepted layout).
        `source` names the file in layout errors, `load_label` (default: `source`) in missing,
        unexpected or mis-shaped key errors."""
        from ultrabench_eval.models.weights import read_checkpoint, strict_load

        state = self.convert_checkpoint(read_checkpoint(path), source)
        model = self.build_model()
        strict_load(model, state, load_label or source)
        return model

    def load(self, weights: str | None = None) -> CheckpointAdapter:
        from ultrabench_eval.models.weights import file_sha256

        if weights is None:
            model, weights_id = self.load_pretrained()
        else:
            model = self.model_from_file(weights, str(weights), f"weights file {weights}")
            weights_id = f"file:sha256={file_sha256(weights)}"
        self._finish(model, weights_id)
        return self

    def _finish(self, model: torch.nn.Module, weights_id: str) -> None:
        self._set_model(model)
        self._weights_id = weights_id
