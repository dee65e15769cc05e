"""The feature cache: one safetensors file (one tensor per pooling) and one JSON sidecar per
(model fingerprint, task, split, view).

Layout: `<cache>/features/<model>-<fingerprint>/<task>/<split>/<view>.safetensors` and
`<view>.json`. The sidecar holds the hash of the image-id list and of the image store's content,
the digest of the view's corruption code, and a sha256 of every tensor's bytes; a file whose
sidecar does not match the current split, or whose bytes do not match their checksum, is
recomputed, never reused (the latter with one warning line on stderr). The tensor
file is written first and the sidecar last, each atomically, so a sidecar always describes a
whole file, and two processes writing the same entry leave one valid file.

Beside a final file may stand, while it is being computed, a `<view>.partial` file (the rows
done so far: a killed run resumes from it) and, in a multi-process run, one
`<view>.shard<r>of<w>` file per process, merged into the final one at the end.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ultrabench_eval.core import atomic
from ultrabench_eval.core.naming import safe_name

CACHE_FORMAT = "2"  # 2: tensor checksums and the view code digest in the sidecar
PARTIAL = "partial"


@dataclass(frozen=True)
class CacheKey:
    model: str
    fingerprint: str
    task: str
    split: str
    view: str = "clean"
    view_code: str = ""  # digest of the view's corruption code (cache_identity.view_code_digest)

    def folder(self, cache_root: Path) -> Path:
        return (
            Path(cache_root)
            / "features"
            / f"{safe_name(self.model)}-{self.fingerprint}"
            / safe_name(self.task)
            / self.split
        )

    def paths(self, cache_root: Path, part: str = "") -> tuple[Path, Path]:
        """(tensor file, sidecar) of the final file, or of a part: `partial`, `shard0of2`, ..."""
        stem = safe_name(self.view) + (f".{part}" if part else "")
        folder = self.folder(cache_root)
        return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def shard_part(rank: int, world: int) -> str:
    return f"shard{rank}of{world}"


def ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def load(
    key: CacheKey, cache_root: Path, ids: list[str], content_hash: str, part: str = ""
) -> dict[str, np.ndarray] | None:
    """The cached features of exactly these images, else None."""
    found = load_entry(key, cache_root, ids, content_hash, part)
    return None if found is None else found[0]


def load_entry(
    key: CacheKey, cache_root: Path, ids: list[str], content_hash: str, part: str = ""
) -> tuple[dict[str, np.ndarray], dict] | None:
    """(features, sidecar) of a whole cached file of exactly these images, else None."""
    found = _read(key, cache_root, ids, content_hash, part)
    if found is None or found[1]["done"] != len(ids):
        return None
    return found


def load_partial(
    key: CacheKey, cache_root: Path, ids: list[str], content_hash: str, part: str = PARTIAL
) -> dict[str, np.ndarray] | None:
    """Features of the first rows of `ids` saved by an interrupted run, else None."""
    found = _read(key, cache_root, ids, content_hash, part)
    return None if found is None else found[0]


def _read(key, cache_root, ids, content_hash, part):
    tensors_path, sidecar_path = key.paths(cache_root, part)
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if (
        sidecar.get("format") != CACHE_FORMAT
        or sidecar.get("fingerprint") != key.fingerprint
        or sidecar.get("ids_sha256") != ids_hash(ids)
        or sidecar.get("store_content_sha256") != content_hash
        or sidecar.get("view_code_sha256", "") != key.view_code
    ):
        return None
    try:
        from safetensors.numpy import load_file

        features = load_file(str(tensors_path))
    except Exception:
        return None  # unreadable or truncated: recompute
    shapes = {k: list(v.shape) for k, v in features.items()}
    if shapes != sidecar.get("shapes") or any(
        v.shape[0] != sidecar.get("done") for v in features.values()
    ):
        return None
    if sidecar.get("tensors_sha256") != tensors_sha256(features):
        print(
            f"warning: cached features {tensors_path} do not match their checksum "
            "(the file was damaged): recomputing them",
            file=sys.stderr,
        )
        return None
    return features, sidecar


def tensors_sha256(features: dict[str, np.ndarray]) -> dict[str, str]:
    """sha256 of each tensor's bytes (float32, C order): checked on every read; about 35 ms for
    7,000 x 768 floats (21.5 MB) on one CPU core."""
    return {
        name: hashlib.sha256(np.ascontiguousarray(value, dtype=np.float32).data).hexdigest()
        for name, value in sorted(features.items())
    }


def save(
    key: CacheKey,
    cache_root: Path,
    features: dict[str, np.ndarray],
    ids: list[str],
    content_hash: str,
    extra: dict | None = None,
    part: str = "",
) -> None:
    """Write features for the first rows of `ids` (all of them for a final file)."""
    from safetensors.numpy import save_file

    tensors_path, sidecar_path = key.paths(cache_root, part)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in features.items()}
    done = {v.shape[0] for v in arrays.values()}
    if len(done) != 1:
        raise ValueError("every pooling must have the same number of rows")
    atomic.write_with(tensors_path, lambda tmp: save_file(arrays, str(tmp)))
    sidecar = {
        "format": CACHE_FORMAT,
        "model": key.model,
        "fingerprint": key.fingerprint,
        "task": key.task,
        "split": key.split,
        "view": key.view,
        "count": len(ids),
        "done": done.pop(),
        "ids_sha256": ids_hash(ids),
        "store_content_sha256": content_hash,
        "dtype": "float32",
        "shapes": {k: list(v.shape) for k, v in arrays.items()},
        "tensors_sha256": tensors_sha256(arrays),
        "view_code_sha256": key.view_code,
        **(extra or {}),
    }
    atomic.write_json(sidecar_path, sidecar)


def remove(key: CacheKey, cache_root: Path, part: str) -> None:
    for path in key.paths(cache_root, part):
        path.unlink(missing_ok=True)
