"""Reading checkpoints and loading them strictly: a load that leaves missing or unexpected keys
is an error, not a warning."""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ultrabench_eval.core.errors import UserError

_HASH_CHUNK = 1 << 22
# Training scripts save their arguments beside the weights (MAE: `args`); these plain
# containers are safe to unpickle, unlike arbitrary classes. Allowed during our own reads only
# (`torch.serialization.safe_globals`), never added to the process-wide list.
SAFE_EXTRAS = (argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath)
# The training state mmengine's Runner.save_checkpoint writes beside `state_dict` (message_hub:
# HistoryBuffer objects holding numpy arrays and, through getattr, their statistics methods).
# Globals under these names are read as inert placeholders, never imported or called.
MMENGINE_RUNNER_STATE = ("mmengine.", "numpy.", "builtins.getattr")
_READ_FIX = "expected a .safetensors file or a torch checkpoint of tensors"


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
        # flat first: a 0-d tensor (BatchNorm's num_batches_tracked) has no byte view of its own
        flat = tensor.reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike, inert_globals: Iterable[str] = ()) -> dict:
    """Read a `.safetensors` file or a torch pickle (weights only: no code runs on load).

    `inert_globals`: names (a trailing "." for a whole module) of classes and functions a
    training checkpoint may hold beside its tensors; they are read as inert placeholders and
    every top-level entry holding one is dropped.
    Errors are one line; torch's own text is the error's cause (`ubench --verbose` shows it).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"weights path {path} is a directory (pass the checkpoint file itself)")
    if not path.is_file():
        raise UserError(f"weights file not found: {path} (pass an existing file to --weights)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        loaded = _torch_load(path, tuple(inert_globals))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"cannot read weights file {path}: {describe_read_error(exc)} ({_READ_FIX}; "
            "run `ubench --verbose ...` for torch's message)"
        ) from exc
    if not isinstance(loaded, dict):
        raise UserError(
            f"weights file {path} holds a {type(loaded).__name__}, not a state dict ({_READ_FIX})"
        )
    return _drop_inert_entries(loaded)


def describe_read_error(exc: BaseException) -> str:
    """What a failed torch or safetensors read means, in a few words (torch's text is long)."""
    text = str(exc)
    if "Unsupported global" in text or "unsupported GLOBAL" in text:
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        return (
            f"it holds Python objects ({', '.join(names) or 'unknown classes'}) that the "
            "weights-only reader refuses to build; no code from the file was run"
        )
    if "central directory" in text or "zip archive" in text or "EOF" in text:
        return "the file is truncated or not a torch checkpoint"
    if "Unpickl" in type(exc).__name__ or "invalid load key" in text:
        return "the file is not a torch checkpoint"
    if "header" in text.lower() or "safetensor" in type(exc).__name__.lower():
        return "the file is not a valid safetensors file"
    first = text.splitlines()[0] if text else ""
    return f"the file is not a torch checkpoint ({type(exc).__name__}: {first[:120]})"


def _torch_load(path: Path, inert_globals: tuple[str, ...] = ()):
    """Memory-map the file where its format allows (a 10 GB training checkpoint then costs
    only the tensors an adapter reads); older formats are read whole."""
    allowed = [*SAFE_EXTRAS, *_inert_stand_ins(path, inert_globals)]
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)


class _InertObject:
    """Stands in for a class or function of a training checkpoint: it takes whatever the
    pickle gives it and keeps it, and never runs code (nothing is imported or called)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args

    def __setstate__(self, state: object) -> None:
        self.state = state


def _inert_stand_ins(path: Path, names: tuple[str, ...]) -> list[tuple[type, str]]:
    """(placeholder, full name) for each global of the file that `names` covers; none when
    there are none (or the file is in a format the scan cannot read)."""
    if not names:
        return []
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy or broken files: the load itself reports them
        return []
    covered = [
        g for g in found if any(g == n or (n.endswith(".") and g.startswith(n)) for n in names)
    ]
    return [(type(f"Inert[{g}]", (_InertObject,), {}), g) for g in covered]


def _holds_inert(value: object) -> bool:
    if isinstance(value, _InertObject):
        return True
    if isinstance(value, Mapping):
        return any(_holds_inert(v) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return any(_holds_inert(v) for v in value)
    return False


def _drop_inert_entries(checkpoint: dict) -> dict:
    """The checkpoint without its top-level entries that hold a placeholder (training state)."""
    return {k: v for k, v in checkpoint.items() if not _holds_inert(v)}


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
