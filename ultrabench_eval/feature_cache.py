"""The feature cache: one safetensors file (one tensor per pooling) and one JSON sidecar per
(model fingerprint, task, split, view).

Layout: `<cache>/features/<model>-<fingerprint>/<task>/<split>/<view>.safetensors` and
`<view>.json`. The sidecar holds the hash of the image-id list and of the image store's content;
a file whose sidecar does not match the current split is recomputed, never reused. The tensor
file is written first and the sidecar last, each atomically, so a sidecar always describes a
whole file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ultrabench_eval import atomic

CACHE_FORMAT = "1"


@dataclass(frozen=True)
class CacheKey:
    model: str
    fingerprint: str
    task: str
    split: str
    view: str = "clean"

    def paths(self, cache_root: Path) -> tuple[Path, Path]:
        folder = (
            Path(cache_root)
            / "features"
            / f"{safe_name(self.model)}-{self.fingerprint}"
            / safe_name(self.task)
            / self.split
        )
        stem = safe_name(self.view)
        return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def safe_name(name: str) -> str:
    """A model or task name as a file name (`timm:vit_small` -> `timm_vit_small`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def load(
    key: CacheKey, cache_root: Path, ids: list[str], content_hash: str
) -> dict[str, np.ndarray] | None:
    """The cached features when they match these images exactly, else None."""
    tensors_path, sidecar_path = key.paths(cache_root)
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (
        sidecar.get("format") != CACHE_FORMAT
        or sidecar.get("fingerprint") != key.fingerprint
        or sidecar.get("ids_sha256") != ids_hash(ids)
        or sidecar.get("store_content_sha256") != content_hash
    ):
        return None
    try:
        from safetensors.numpy import load_file

        features = load_file(str(tensors_path))
    except Exception:
        return None  # unreadable or truncated: recompute
    shapes = {k: list(v.shape) for k, v in features.items()}
    if shapes != sidecar.get("shapes"):
        return None
    return features


def save(
    key: CacheKey,
    cache_root: Path,
    features: dict[str, np.ndarray],
    ids: list[str],
    content_hash: str,
    extra: dict | None = None,
) -> None:
    from safetensors.numpy import save_file

    tensors_path, sidecar_path = key.paths(cache_root)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in features.items()}
    atomic.write_with(tensors_path, lambda tmp: save_file(arrays, str(tmp)))
    sidecar = {
        "format": CACHE_FORMAT,
        "model": key.model,
        "fingerprint": key.fingerprint,
        "task": key.task,
        "split": key.split,
        "view": key.view,
        "count": len(ids),
        "ids_sha256": ids_hash(ids),
        "store_content_sha256": content_hash,
        "dtype": "float32",
        "shapes": {k: list(v.shape) for k, v in arrays.items()},
        **(extra or {}),
    }
    atomic.write_json(sidecar_path, sidecar)
