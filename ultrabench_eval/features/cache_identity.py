"""What a cached artefact was made by, so a change to any of it misses the cache.

A feature file is keyed on `feature_fingerprint` (its folder name): the adapter's fingerprint
(name, code digest, weights, input spec), the digest of the pipeline code that shapes features
before and after the encoder (extraction, loader, image-store decoding), the precision actually
run (fp32 on a CPU, bf16 or fp16 under CUDA autocast), the options that change numbers
(`torch.compile`, channels-last memory) and the torch and timm versions. A corrupted view adds
the digest of its corruptions' code (`view_code_digest`, checked from the sidecar). A result
record is keyed on the whole package's code (`package_digest`), which exists from a wheel as
well as from a git checkout. Source files are hashed once per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import torch

from ultrabench_eval.core.digests import json_digest
from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.models.adapter import Adapter, file_digest, module_closure, module_digests

# the modules that shape features besides the adapter (views' corruptions: `view_code_digest`)
PIPELINE_MODULES = (
    "ultrabench_eval.features.extract",
    "ultrabench_eval.data.loader",
    "ultrabench_eval.data.image_store",
    "ultrabench_eval.data.store_build",
    "ultrabench_eval.data.scan_mask",
    "ultrabench_eval.corruptions.views",
)
_PACKAGES = ("ultrabench_eval", "model_zoo")


def precision_for(device: torch.device) -> str:
    """The precision extraction runs at on `device`: autocast to bf16 on GPUs that have it,
    fp16 on older ones, full fp32 elsewhere."""
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def extraction_options(adapter: Adapter) -> dict[str, bool]:
    """The speed-ups of `TorchAdapter.optimise` in effect: both may change the last bits."""
    return {
        # `optimise(compile=True)` shadows the method with the compiled one on the instance
        "compile": "forward_features" in vars(adapter),
        "channels_last": adapter.memory_format == torch.channels_last,
    }


@functools.cache
def pipeline_digest() -> str:
    return json_digest(module_digests(set(PIPELINE_MODULES)))


def view_code_digest(view: View) -> str:
    """Digest of the code of a view's corruptions (their modules and the corruption modules
    those import); "" for the clean view."""
    if view.is_clean:
        return ""
    roots = {type(CORRUPTIONS.get(part)).__module__ for part in view.parts}
    return _corruption_digest(frozenset(roots))


@functools.cache
def _corruption_digest(roots: frozenset[str]) -> str:
    modules = {m for m in module_closure(set(roots), {"ultrabench_eval"}) if ".corruptions." in m}
    return json_digest(module_digests(modules))


def extraction_identity(adapter: Adapter) -> dict[str, Any]:
    """Every component of a feature file's key (see the module's docstring)."""
    return {
        "adapter": adapter.fingerprint(),
        "pipeline": pipeline_digest(),
        "precision": precision_for(adapter.device),
        "options": extraction_options(adapter),
        "torch": torch.__version__,
        "timm": _version("timm"),
    }


def feature_fingerprint(adapter: Adapter) -> str:
    return json_digest(extraction_identity(adapter))[:16]


@functools.cache
def package_digest() -> str:
    """sha256 over the source files of the installed `ultrabench_eval` and `model_zoo`
    packages (relative path and bytes): the code identity of a record, with or without git."""
    digest = hashlib.sha256()
    for package in _PACKAGES:
        with contextlib.suppress(ImportError):
            root = Path(__import__(package).__file__).resolve().parent
            for path in sorted(root.rglob("*.py")):
                relative = path.relative_to(root.parent).as_posix()
                digest.update(f"{relative}\0{file_digest(str(path))}\n".encode())
    return digest.hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
