"""`ubench cache ls` and `ubench cache rm`: what the cache holds, and removing parts of it.
Image store builds a killed run left behind are listed too (and go with `--all` or `--images`)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.image_store import stale_temp_dirs

# `.<split>-<size>px-<interpolation>.tmp-...`: a store's build folder
_STORE_NAME = re.compile(r"^\.(.+)-(\d+)px-(.+?)\.(?:tmp|old)-")


@dataclass(frozen=True)
class Entry:
    kind: str  # "features" or "images"
    name: str  # model (features) or dataset (images)
    detail: dict
    paths: tuple[Path, ...]

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths if p.is_file()) + sum(
            f.stat().st_size for p in self.paths if p.is_dir() for f in p.rglob("*") if f.is_file()
        )


def entries(cache_root: Path) -> list[Entry]:
    """Every finished feature file and image store under `cache_root`."""
    root = Path(cache_root)
    found = []
    for sidecar in sorted((root / "features").glob("*/*/*/*.json")):
        if "." in sidecar.stem:  # <view>.partial / <view>.shard0of2: work in progress
            continue
        meta = _read_meta(sidecar)
        if meta is None:
            continue
        detail = {
            "fingerprint": meta.get("fingerprint"),
            "task": meta.get("task"),
            "split": meta.get("split"),
            "view": meta.get("view"),
            "images": meta.get("count"),
            "dims": {k: v[1] for k, v in meta.get("shapes", {}).items()},
        }
        tensors = sidecar.with_suffix(".safetensors")
        found.append(Entry("features", str(meta.get("model")), detail, (tensors, sidecar)))
    for meta_path in sorted((root / "images").glob("*/*/meta.json")):
        meta = _read_meta(meta_path)
        if meta is None:
            continue
        detail = {
            "split": meta.get("split"),
            "size": meta.get("size"),
            "interpolation": meta.get("interpolation"),
            "images": meta.get("count"),
        }
        found.append(Entry("images", str(meta.get("dataset")), detail, (meta_path.parent,)))
    for folder in sorted(p for p in (root / "images").glob("*") if p.is_dir()):
        found += [_unfinished(folder.name, tmp) for tmp in stale_temp_dirs(folder)]
    return found


def _read_meta(path: Path) -> dict | None:
    """A cache entry's JSON description; None for one being written or damaged (not listed)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _unfinished(dataset: str, tmp: Path) -> Entry:
    """A store build a killed run left behind (no process owns it any more)."""
    match = _STORE_NAME.match(tmp.name)
    split, size, interpolation = match.groups() if match else ("?", "?", "")
    detail = {
        "split": split,
        "size": size,
        "interpolation": f"{interpolation}, unfinished build".lstrip(", "),
        "images": None,
    }
    return Entry("images", dataset, detail, (tmp,))


def select(
    found: list[Entry],
    *,
    models: list[str] | None = None,
    tasks: list[str] | None = None,
    datasets: list[str] | None = None,
    images: bool = False,
    everything: bool = False,
) -> list[Entry]:
    """The entries `ubench cache rm` would remove; at least one filter, or `everything`."""
    if not (everything or models or tasks or datasets or images):
        raise UserError(
            "say what to remove: --model, --task, --dataset, --images, or --all for everything"
        )
    return [e for e in found if everything or _wanted(e, models, tasks, datasets, images)]


def _wanted(entry: Entry, models, tasks, datasets, images: bool) -> bool:
    if entry.kind == "features":
        if images or datasets:
            return False
        return (not models or entry.name in models) and (not tasks or entry.detail["task"] in tasks)
    if models or tasks or not (images or datasets):
        return False
    return not datasets or entry.name in datasets


def remove(chosen: list[Entry]) -> int:
    """Delete the entries; returns the bytes freed."""
    freed = 0
    for entry in chosen:
        freed += entry.bytes
        for path in entry.paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return freed
