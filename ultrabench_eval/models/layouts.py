"""Checkpoint layouts: what an official weights file holds, key by key, without the weights.

A layout is a JSON manifest written from the model's official code or published file: the file
format, every tensor's key (nested containers joined by `/`, e.g.
`target_encoder/module.blocks.0.attn.qkv.weight`) and shape, the non-tensor entries, which part
an adapter loads, and the preprocessing the model card documents. From it a test or
`ubench models --check` builds a file with random weights and the official key names and
shapes, and loads it through the adapter, so that every loader is exercised without the real
weights. Manifests live in `model_zoo/layouts/<name>.json`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ultrabench_eval.core.errors import UserError

SEPARATOR = "/"
_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int64": torch.int64,
}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class CheckpointLayout:
    """The key layout of one official checkpoint file."""

    name: str
    description: str
    source: str  # where the layout was read: repository, commit, file, and how
    file_name: str  # the official file's name, e.g. IN1K-vit.h.14-300e.pth.tar
    file_format: str  # "torch" (torch.save) or "safetensors" (flat keys only)
    tensors: dict[str, TensorSpec]
    extras: dict[str, Any] = field(default_factory=dict)  # non-tensor entries, "/"-nested keys
    # The part of the file the adapter loads (a key prefix) and keys it drops on purpose.
    used_prefix: str = ""
    ignored: tuple[str, ...] = ()  # regular expressions over full keys
    # Regular expressions with one group, the index of a repeated block, for reduced variants.
    block_patterns: tuple[str, ...] = ()
    # What the model card documents: input size [h, w], mean, std (on [0, 1] intensities).
    preprocessing: dict[str, Any] = field(default_factory=dict)
    # Tensors the official file holds as zeros (a masked-out bias, say): random files keep them
    # zero, so an adapter may refuse a file where they are not.
    zeros: tuple[str, ...] = ()
    # Values the adapter's conversion creates that the file does not hold (timm's DINOv2 files
    # fold the class-token position into `cls_token`; the conversion restores a zero slot).
    values_added: int = 0

    # --- reading --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointLayout:
        tensors = {}
        for key, spec in data["tensors"].items():
            if isinstance(spec, dict):
                tensors[key] = TensorSpec(tuple(spec["shape"]), spec.get("dtype", "float32"))
            else:
                tensors[key] = TensorSpec(tuple(spec), data.get("dtype", "float32"))
        if data["file_format"] not in ("torch", "safetensors"):
            raise ValueError(f"layout {data['name']}: file_format must be torch or safetensors")
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            source=data["source"],
            file_name=data["file_name"],
            file_format=data["file_format"],
            tensors=tensors,
            extras=data.get("extras", {}),
            used_prefix=data.get("used_prefix", ""),
            ignored=tuple(data.get("ignored", ())),
            block_patterns=tuple(data.get("block_patterns", ())),
            preprocessing=data.get("preprocessing", {}),
            zeros=tuple(data.get("zeros", ())),
            values_added=int(data.get("values_added", 0)),
        )

    @classmethod
    def load(cls, name: str) -> CheckpointLayout:
        """The manifest `name` from the layout folders (built-in first)."""
        for folder in layout_dirs():
            path = folder / f"{name}.json"
            if path.is_file():
                return cls.from_dict(json.loads(path.read_text()))
        raise UserError(
            f"no checkpoint layout named '{name}' in {', '.join(map(str, layout_dirs()))}"
        )

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], *, container: str = "", **fields: Any
    ) -> CheckpointLayout:
        """A layout whose tensors are `state`'s keys and shapes, nested under `container`
        (e.g. "model/"): how a manifest is first written from an official model's code."""
        tensors = {
            f"{container}{k}": TensorSpec(tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in state.items()
        }
        return cls(tensors=tensors, **fields)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "file_name": self.file_name,
            "file_format": self.file_format,
            "used_prefix": self.used_prefix,
            "ignored": list(self.ignored),
            "block_patterns": list(self.block_patterns),
            "preprocessing": self.preprocessing,
            "zeros": list(self.zeros),
            "values_added": self.values_added,
            "extras": self.extras,
            "tensors": {
                k: list(v.shape)
                if v.dtype == "float32"
                else {"shape": list(v.shape), "dtype": v.dtype}
                for k, v in self.tensors.items()
            },
        }

    # --- questions ------------------------------------------------------------------------
    def used_keys(self) -> list[str]:
        """Keys the adapter must load: under `used_prefix` and not ignored."""
        return [
            k
            for k in self.tensors
            if k.startswith(self.used_prefix) and not any(re.search(p, k) for p in self.ignored)
        ]

    def parameter_count(self) -> int:
        total = 0
        for key in self.used_keys():
            count = 1
            for dim in self.tensors[key].shape:
                count *= dim
            total += count
        return total

    def reduced(self, depth: int) -> CheckpointLayout:
        """The same layout with only the first `depth` of each repeated block group."""
        if not self.block_patterns:
            return self
        patterns = [re.compile(p) for p in self.block_patterns]

        def keep(key: str) -> bool:
            for pattern in patterns:
                match = pattern.search(key)
                if match and int(match.group(1)) >= depth:
                    return False
            return True

        return replace(self, tensors={k: v for k, v in self.tensors.items() if keep(k)})

    # --- building -------------------------------------------------------------------------
    def random_checkpoint(self, seed: int = 0, device: str | torch.device = "cpu") -> dict:
        """The nested checkpoint dict with random tensors (meta tensors on device "meta")."""
        generator = torch.Generator().manual_seed(seed)
        zeros = [re.compile(p) for p in self.zeros]
        out: dict[str, Any] = {}
        for key, spec in self.tensors.items():
            tensor = _random_tensor(spec, generator, torch.device(device))
            if any(p.search(key) for p in zeros):
                tensor = torch.zeros_like(tensor)
            _put(out, key, tensor)
        for key, value in _flatten(self.extras):
            _put(out, key, value)
        return out

    def build(self, path: str | Path, seed: int = 0) -> Path:
        """Write a file in this layout, with random weights, to `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint = self.random_checkpoint(seed)
        if self.file_format == "safetensors":
            from safetensors.torch import save_file

            flat = dict(_flatten(checkpoint))
            save_file({k: v.contiguous() for k, v in flat.items()}, str(path))
        else:
            torch.save(checkpoint, path)
        return path


def layout_dirs() -> list[Path]:
    # found by name, not imported: only the registry loads the zoo
    spec = importlib.util.find_spec("model_zoo")
    if spec is None or spec.origin is None:
        return []
    return [Path(spec.origin).resolve().parent / "layouts"]


def _random_tensor(spec: TensorSpec, generator: torch.Generator, device: torch.device):
    dtype = _DTYPES[spec.dtype]
    if device.type == "meta":
        return torch.empty(spec.shape, dtype=dtype, device="meta")
    if not dtype.is_floating_point:
        return torch.randint(0, 2, spec.shape, generator=generator, dtype=dtype)
    # small values keep deep random networks finite
    return (torch.randn(spec.shape, generator=generator) * 0.02).to(dtype)


def _put(tree: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(SEPARATOR)
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _flatten(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    # An empty dict below the top is a value of its own (an empty optimizer state, say).
    if isinstance(tree, dict) and (tree or not prefix) and all(isinstance(k, str) for k in tree):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}{SEPARATOR}{key}" if prefix else key)
    else:
        yield prefix, tree
