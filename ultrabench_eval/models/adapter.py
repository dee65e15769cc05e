"""The adapter contract: one interface in front of every encoder.

An adapter receives a batch of grayscale uint8 images [B, 1, H, W] already on its device,
resizes and normalises it per its `InputSpec`, runs the frozen encoder and returns one float32
[B, D] array per pooling it supports (`embed`), or its patch tokens, float32 [B, N, D] on an
(h, w) grid with N = h * w (`embed_tokens`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from ultrabench_eval.core.digests import json_digest

if TYPE_CHECKING:
    from ultrabench_eval.models.layouts import CheckpointLayout

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# "nearest-exact" is PIL's NEAREST (source pixel floor((i + 0.5) * scale), `pil_nearest_resize`);
# torch's "nearest" takes floor(i * scale), a shift of up to half the scale factor.
_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


class PatchTokens(NamedTuple):
    """An encoder's spatial output: `tokens` [B, N, D], row-major over the token `grid` (h, w),
    N = h * w (the first row of tokens is the top of the image)."""

    tokens: torch.Tensor
    grid: tuple[int, int]


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
    # the pooling that is the mean of the patch tokens `embed_tokens` returns, when one is
    # (the contract checks the two agree); None when no pooling is
    mean_of_tokens: ClassVar[str | None] = None

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

    @property
    def token_dim(self) -> int:
        """The documented width D of the patch tokens."""
        raise NotImplementedError(f"{type(self).__name__} does not document its token_dim")

    @property
    def token_grid(self) -> tuple[int, int]:
        """The documented token grid (h, w) at the adapter's input size."""
        raise NotImplementedError(f"{type(self).__name__} does not document its token_grid")

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
        """Keys the feature cache: adapter name, the digest of its code (`adapter_code_digest`),
        weights identity, input spec."""
        payload = json.dumps(
            {
                "name": self.name,
                "adapter_version": self.version,
                "adapter_code": adapter_code_digest(type(self)),
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

    def forward_tokens(self, x: torch.Tensor) -> PatchTokens:
        """Preprocessed batch -> its patch tokens [B, N, D] and their grid (h, w)."""
        raise NotImplementedError(f"model '{self.name}' does not give patch tokens")

    @property
    def gives_tokens(self) -> bool:
        """Whether this adapter implements `forward_tokens` (every built-in one does; a
        third-party adapter without it still serves the pooled-feature protocols)."""
        return type(self).forward_tokens is not Adapter.forward_tokens

    def embed(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 1, H, W] on `self.device` -> {pooling: float32 [B, D]} on that device."""
        _check_images(images, "embed")
        with torch.inference_mode():
            features = self.forward_features(self.preprocess(images))
        return {k: v.float().reshape(v.shape[0], -1).contiguous() for k, v in features.items()}

    def embed_tokens(self, images: torch.Tensor) -> PatchTokens:
        """uint8 [B, 1, H, W] on `self.device` -> float32 patch tokens [B, N, D] on that device
        and their grid (h, w), N = h * w."""
        _check_images(images, "embed_tokens")
        with torch.inference_mode():
            tokens, grid = self.forward_tokens(self.preprocess(images))
        h, w = (int(v) for v in grid)
        if tokens.ndim != 3 or tokens.shape[1] != h * w:
            raise RuntimeError(
                f"model '{self.name}': tokens {tuple(tokens.shape)} do not fill the grid {h}x{w}"
            )
        return PatchTokens(tokens.float().contiguous(), (h, w))


def _check_images(images: torch.Tensor, what: str) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"{what} expects a uint8 tensor of shape [B, 1, H, W]")


def map_tokens(feature_map: torch.Tensor) -> PatchTokens:
    """A convolutional map [B, D, h, w] as patch tokens [B, h * w, D] on its grid."""
    h, w = feature_map.shape[-2:]
    return PatchTokens(feature_map.flatten(2).transpose(1, 2), (h, w))


def patch_grid(size: tuple[int, ...] | torch.Size, patch: int) -> tuple[int, int]:
    """The grid (h, w) of non-overlapping `patch`-pixel patches on an image of `size`
    (height, width): an input spec's size, or a batch's `x.shape[-2:]`."""
    height, width = size[-2:]
    return (int(height) // patch, int(width) // patch)


def grid_tokens(tokens: torch.Tensor, num_prefix_tokens: int, grid: tuple[int, int]) -> PatchTokens:
    """A ViT's final (normed) token sequence [B, prefix + h * w, D] without its prefix (CLS,
    registers) tokens, on its patch grid."""
    return PatchTokens(tokens[:, num_prefix_tokens:], (int(grid[0]), int(grid[1])))


def preprocess(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Resize (no crop), scale to [0, 1], repeat channels, normalise."""
    x = images.float().div_(255.0)
    if tuple(x.shape[-2:]) != tuple(spec.size):
        mode = spec.interpolation
        kwargs: dict[str, Any] = {}
        if mode in ("bilinear", "bicubic"):
            kwargs = {"align_corners": False, "antialias": True}
        if mode == "nearest-exact":
            x = pil_nearest_resize(x, spec.size)
        else:
            x = F.interpolate(x, size=spec.size, mode=mode, **kwargs)
        if mode == "bicubic":
            x = x.clamp_(0.0, 1.0)  # bicubic overshoots; images are bounded, as in PIL
    if spec.channels != 1:
        x = x.expand(-1, spec.channels, -1, -1)
    mean = torch.tensor(spec.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


# --- code identity ------------------------------------------------------------------------------
# What an adapter computes is its code: a digest of that code keys its cached features, so an
# edit (preprocessing, pooling, checkpoint conversion) misses the cache instead of reusing stale
# features. Files are read and hashed once per process.


@functools.cache
def file_digest(path: str) -> str:
    """sha256 of a file's bytes ("" when it cannot be read, e.g. a module without a file)."""
    from ultrabench_eval.models.weights import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return ""


def module_digests(names: set[str]) -> dict[str, str]:
    """{module name: sha256 of its source file} of loaded modules."""
    out = {}
    for name in sorted(names):
        path = getattr(sys.modules.get(name), "__file__", None)
        out[name] = file_digest(path) if path else ""
    return out


def module_closure(roots: set[str], packages: set[str]) -> set[str]:
    """`roots` and the modules they import (at module level, transitively) whose top-level
    package is one of `packages`."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        module = sys.modules.get(name)
        if name in seen or module is None:
            continue
        seen.add(name)
        for value in vars(module).values():
            other = (
                value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
            )
            if isinstance(other, str) and other.split(".")[0] in packages and other not in seen:
                todo.append(other)
    return seen


@functools.cache
def _member_source(member: Any) -> str:
    try:
        return inspect.getsource(member)
    except (OSError, TypeError):
        code = getattr(member, "__code__", None)
        return code.co_code.hex() if code is not None else repr(member)


def _members(cls: type) -> dict[str, str]:
    """The source of every function defined on `cls` as it is now (a method replaced at run
    time, by a subclass or a monkeypatch, changes it)."""
    out = {}
    for name, value in sorted(vars(cls).items()):
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            out[name] = "|".join(_member_source(f) for f in (value.fget, value.fset) if f)
        elif inspect.isfunction(value):
            out[name] = _member_source(value)
    return out


def adapter_code_digest(cls: type[Adapter]) -> str:
    """Digest of what makes an adapter's features: the source of the class and of its bases up
    to `Adapter` (every method as defined now), the files of their modules and of the modules
    those import from the same project packages (architectures, helpers), and every module of
    `ultrabench_eval.models` (checkpoint reading and conversion)."""
    classes = [c for c in cls.__mro__ if isinstance(c, type) and issubclass(c, Adapter)]
    roots = {c.__module__ for c in classes}
    packages = {name.split(".")[0] for name in roots} | {"model_zoo"}
    modules = module_closure(roots, packages - {"ultrabench_eval"})
    models_folder = Path(__file__).resolve().parent
    payload = {
        "classes": [[f"{c.__module__}.{c.__qualname__}", _members(c)] for c in classes],
        "modules": module_digests(modules),
        "models": {p.name: file_digest(str(p)) for p in sorted(models_folder.glob("*.py"))},
    }
    return json_digest(payload)


def pil_source_indices(n_in: int, n_out: int) -> list[int]:
    """The source pixel of each output pixel in PIL's NEAREST resize: floor((i + 0.5) * scale),
    with the position advanced by repeated float64 additions as PIL's ImagingScaleAffine does
    (torch's "nearest-exact" uses the same rule but rounds exact ties differently: 9 % of the
    pixels of a 640 -> 224 resize)."""
    scale = n_in / n_out
    position, out = scale * 0.5, []
    for _ in range(n_out):
        out.append(min(int(position), n_in - 1))
        position += scale
    return out


def pil_nearest_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, *size], each pixel copied from the one PIL's NEAREST picks."""
    rows = torch.tensor(pil_source_indices(x.shape[-2], size[0]), device=x.device)
    cols = torch.tensor(pil_source_indices(x.shape[-1], size[1]), device=x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


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
    # globals of a training checkpoint read as inert placeholders (see weights.read_checkpoint)
    inert_globals: tuple[str, ...] = ()

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

        checkpoint = read_checkpoint(path, inert_globals=self.inert_globals)
        state = self.convert_checkpoint(checkpoint, source)
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
