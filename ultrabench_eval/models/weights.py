"""Reading checkpoints and loading them strictly: a load that leaves missing or unexpected keys
is an error, not a warning."""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ultrabench_eval.core.errors import UserError

_HASH_CHUNK = 1 << 22
# Training scripts save their arguments beside the weights (MAE: `args`); these plain
# containers are safe to unpickle, unlike arbitrary classes.
torch.serialization.add_safe_globals([argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath])


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Hash of a state dict's names, shapes, dtypes and values, independent of device."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a `.safetensors` file or a torch pickle (weights only: no code runs on load)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights file not found: {path} (pass an existing file to --weights)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        loaded = _torch_load(path)
    except Exception as exc:
        raise UserError(
            f"cannot read weights file {path}: {type(exc).__name__}: {exc} "
            "(expected a .safetensors file or a torch checkpoint of tensors)"
        ) from None
    if not isinstance(loaded, dict):
        raise UserError(f"weights file {path} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def _torch_load(path: Path):
    """Memory-map the file where its format allows (a 10 GB training checkpoint then costs
    only the tensors an adapter reads); older formats are read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def select_state_dict(checkpoint: Mapping, keys: Iterable[str], source: str) -> dict:
    """Return the first nested dict found under one of `keys` (e.g. `target_encoder`, `model`),
    or the checkpoint itself when it is already a flat mapping of tensors."""
    for key in keys:
        value = checkpoint.get(key)
        if isinstance(value, Mapping) and value:
            return dict(value)
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return dict(checkpoint)
    raise UserError(
        f"{source}: no state dict under any of {list(keys)}; top-level keys are "
        f"{sorted(checkpoint)[:8]}"
    )


def strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict:
    """Remove each prefix (in order, repeatedly) from every key that has it."""
    out = {}
    prefixes = tuple(prefixes)
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    changed = True
        out[key] = value
    return out


def state_mismatches(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]
) -> list[str]:
    """What keeps `state` from loading strictly into a module with state dict `expected`."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if mis_shaped:
        k = mis_shaped[0]
        problems.append(
            f"{len(mis_shaped)} keys with other shapes (e.g. {k}: checkpoint "
            f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
        )
    return problems


def strict_load(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load `state` into `module`; any missing, unexpected or mis-shaped key is a UserError."""
    problems = state_mismatches(module.state_dict(), state)
    if problems:
        raise UserError(
            f"{source} does not fit the model: {'; '.join(problems)} "
            "(check that the file is the checkpoint this adapter expects)"
        )
    module.load_state_dict(state, strict=True)
