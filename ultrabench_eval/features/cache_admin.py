"""`ubench cache ls` and `ubench cache rm`: what the cache holds, and removing parts of it.

Five kinds of entry: `features` (pooled vectors, one file per model x task x split x view),
`tokens` (patch tokens, the same key plus the storage dtype), `images` (image stores),
`labels` (segmentation label stores, beside the image stores of their dataset) and `hf` (a
Hugging Face dataset written out as a task folder, `data.hub.materialise`). Features and
tokens are chosen by model and task; image and label stores and hf folders by dataset. Work a
killed run left behind is listed too, as unfinished: an image or label store's build folder, a
token file's `.partial` file (one no running process is filling: its entry lock is free), an hf
folder's write. Removing a token entry also removes its empty lock file, unless a process holds
it.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.naming import safe_name
from ultrabench_eval.data.image_store import stale_temp_dirs
from ultrabench_eval.features.token_cache import DTYPES, PARTIAL

try:  # POSIX; elsewhere no lock is seen as held
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

KINDS = ("features", "tokens", "images", "labels", "hf")
SOURCE_FILE = "source.json"  # an hf folder's description (`data.hub.materialise`)
# `.<split>-<size>px-<interpolation>.tmp-...`: an image store's build folder
_STORE_NAME = re.compile(r"^\.(.+)-(\d+)px-(.+?)\.(?:tmp|old)-")
# `<split>-labels-<size>px` (and `.<that>.tmp-...` while it is built): a label store
_LABELS_DIR = re.compile(r"^(?P<split>.+)-labels-(?P<size>\d+)px$")
_LABELS_BUILD = re.compile(r"^\.(?P<split>.+)-labels-(?P<size>\d+)px\.(?:tmp|old)-")
_DTYPE = "|".join(map(re.escape, DTYPES))
# `<view>.<dtype>.npy` / `.json`, and `<view>.<dtype>.partial.npy` / `.json`: a token file
_TOKEN_FILE = re.compile(
    rf"^(?P<view>[^.].*)\.(?P<dtype>{_DTYPE})(?P<partial>\.{PARTIAL})?\.(?P<ext>npy|json)$"
)
# `.<view>.<dtype>.lock`: the lock a token file's writer holds
_TOKEN_LOCK = re.compile(rf"^\.(?P<view>.+)\.(?P<dtype>{_DTYPE})\.lock$")
# removing an entry's last file also removes its empty split, task and model folders
_PRUNED_LEVELS = 3


@dataclass(frozen=True)
class Entry:
    kind: str  # one of KINDS
    name: str  # model (features, tokens) or dataset folder (images, labels)
    detail: dict
    paths: tuple[Path, ...]
    # lock files that go with the entry, removed only while no process holds them
    locks: tuple[Path, ...] = field(default=(), compare=False)

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths if p.is_file()) + sum(
            f.stat().st_size for p in self.paths if p.is_dir() for f in p.rglob("*") if f.is_file()
        )

    @property
    def what(self) -> str:
        """One line saying what the entry holds, for listings."""
        d = self.detail
        if self.kind == "features":
            dims = ", ".join(f"{k} {v}" for k, v in d["dims"].items())
            return f"{d['task']}/{d['split']}/{d['view']} [{dims}] {d['fingerprint']}"
        if self.kind == "tokens":
            where = f"{d['task']}/{d['split']}/{d['view']} {d['dtype']}"
            if d["unfinished"]:
                rows = "" if d["done"] is None else f": {d['done']} of {d['images']} rows"
                return f"{where}, unfinished{rows}"
            shape, grid = d["shape"], d["grid"]
            tokens = f"{shape[1]} tokens x {shape[2]}" if shape and len(shape) == 3 else "?"
            if grid and len(grid) == 2:
                tokens += f", grid {grid[0]}x{grid[1]}"
            return f"{where} [{tokens}] {d['fingerprint']}"
        if self.kind == "hf":
            if d.get("unfinished"):
                return f"{d['source']}, unfinished write"
            sizes = d.get("sizes") or {}
            counts = "/".join(str(sizes.get(s, "?")) for s in ("train", "validation", "test"))
            at = f"@{str(d['revision'])[:12]}" if d.get("revision") else ""
            return f"{d['source']}{at} (train/val/test {counts})"
        if self.kind == "labels":
            return f"{d['split']} {d['size']}px labels" + (
                ", unfinished build" if d["unfinished"] else ""
            )
        return f"{d['split']} {d['size']}px {d['interpolation']}"


def entries(cache_root: Path) -> list[Entry]:
    """Every finished feature file, token file, image store and label store under `cache_root`,
    and the unfinished work no running process owns."""
    root = Path(cache_root)
    return _feature_entries(root) + _token_entries(root) + _store_entries(root) + _hf_entries(root)


def _feature_entries(root: Path) -> list[Entry]:
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
    return found


def _token_entries(root: Path) -> list[Entry]:
    """Token files by their folder `tokens/<model>-<fingerprint>/<task>/<split>/`: the finished
    file of each view and dtype, and a partial one no process is filling."""
    found = []
    for folder in sorted(p for p in (root / "tokens").glob("*/*/*") if p.is_dir()):
        kinds: dict[tuple[str, str], set[bool]] = {}  # (view, dtype) -> {partial?}
        locks: dict[tuple[str, str], Path] = {}
        for path in sorted(folder.iterdir()):
            lock = _TOKEN_LOCK.match(path.name)
            if lock:
                locks[(lock["view"], lock["dtype"])] = path
            elif match := _TOKEN_FILE.match(path.name):
                kinds.setdefault((match["view"], match["dtype"]), set()).add(bool(match["partial"]))
        for (view, dtype), partial in kinds.items():
            lock = locks.get((view, dtype))
            owned = (lock,) if lock else ()
            if False in partial:
                found.append(_token_entry(folder, view, dtype, False, owned))
            if True in partial and not (lock and _held(lock)):
                found.append(_token_entry(folder, view, dtype, True, owned))
    return found


def _token_entry(
    folder: Path, view: str, dtype: str, unfinished: bool, locks: tuple[Path, ...]
) -> Entry:
    """The finished or unfinished token file of one view and dtype, described by its sidecar,
    else by its path (a damaged or missing sidecar)."""
    stem = f"{view}.{dtype}" + (f".{PARTIAL}" if unfinished else "")
    data, sidecar = folder / f"{stem}.npy", folder / f"{stem}.json"
    meta = _read_meta(sidecar) or {}
    model_folder, task, split = folder.parent.parent.name, folder.parent.name, folder.name
    model, _, fingerprint = model_folder.rpartition("-")
    done = meta.get("done")
    detail = {
        "fingerprint": meta.get("fingerprint", fingerprint),
        "task": meta.get("task", task),
        "split": meta.get("split", split),
        "view": meta.get("view", view),
        "dtype": meta.get("dtype", dtype),
        "images": meta.get("count"),
        "shape": meta.get("shape"),
        "grid": meta.get("grid"),
        "unfinished": unfinished,
        "done": done if isinstance(done, int) else None,
    }
    name = str(meta.get("model", model or model_folder))
    return Entry("tokens", name, detail, (data, sidecar), locks)


def _store_entries(root: Path) -> list[Entry]:
    found = []
    for meta_path in sorted((root / "images").glob("*/*/meta.json")):
        meta = _read_meta(meta_path)
        if meta is None:
            continue
        folder = meta_path.parent
        labels = _LABELS_DIR.match(folder.name)
        if labels:
            detail = {
                "split": labels["split"],
                "size": meta.get("size"),
                "interpolation": "nearest",  # class indices are never blended
                "images": meta.get("count"),
                "unfinished": False,
            }
            found.append(Entry("labels", folder.parent.name, detail, (folder,)))
            continue
        detail = {
            "split": meta.get("split"),
            "size": meta.get("size"),
            "interpolation": meta.get("interpolation"),
            "images": meta.get("count"),
        }
        found.append(Entry("images", str(meta.get("dataset")), detail, (folder,)))
    for folder in sorted(p for p in (root / "images").glob("*") if p.is_dir()):
        found += [_unfinished(folder.name, tmp) for tmp in stale_temp_dirs(folder)]
    return found


def _hf_entries(root: Path) -> list[Entry]:
    """The task folders Hugging Face datasets were written out as, `hf/<dataset>/<key>/`, and
    the writes a killed run left behind."""
    found = []
    for folder in sorted(p for p in (root / "hf").glob("*/*") if p.is_dir()):
        metas = [m for m in folder.glob(f"*/{SOURCE_FILE}") if m.is_file()]
        meta = _read_meta(metas[0]) if metas else None
        if meta is None:
            continue
        sizes = meta.get("sizes") if isinstance(meta.get("sizes"), dict) else {}
        detail = {
            "source": meta.get("dataset"),
            "revision": meta.get("revision"),
            "sizes": sizes,
            "images": sum(v for v in sizes.values() if isinstance(v, int)) or None,
            "unfinished": False,
        }
        found.append(Entry("hf", folder.parent.name, detail, (folder,)))
    for dataset in sorted(p for p in (root / "hf").glob("*") if p.is_dir()):
        for tmp in stale_temp_dirs(dataset):
            detail = {"source": dataset.name, "images": None, "unfinished": True}
            found.append(Entry("hf", dataset.name, detail, (tmp,)))
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
    labels = _LABELS_BUILD.match(tmp.name)
    if labels:
        detail = {
            "split": labels["split"],
            "size": labels["size"],
            "interpolation": "nearest, unfinished build",
            "images": None,
            "unfinished": True,
        }
        return Entry("labels", dataset, detail, (tmp,))
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
    """The entries `ubench cache rm` would remove; at least one filter, or `everything`.

    Models and tasks choose features and tokens; `images` (all) or datasets choose image and
    label stores and the folders Hugging Face datasets were written out as."""
    if not (everything or models or tasks or datasets or images):
        raise UserError(
            "say what to remove: --model, --task, --dataset, --images, or --all for everything"
        )
    return [e for e in found if everything or _wanted(e, models, tasks, datasets, images)]


def _wanted(entry: Entry, models, tasks, datasets, images: bool) -> bool:
    if entry.kind in ("features", "tokens"):
        if images or datasets:
            return False
        return (not models or _named(entry.name, models)) and (
            not tasks or _named(str(entry.detail["task"]), tasks)
        )
    if models or tasks or not (images or datasets):
        return False
    return not datasets or entry.name in datasets


def _named(value: str, wanted: list[str]) -> bool:
    """`value` is one of `wanted`, or its file-name form (what a token file's path tells when
    its sidecar is gone)."""
    return value in wanted or value in {safe_name(w) for w in wanted}


def remove(chosen: list[Entry]) -> int:
    """Delete the entries (and their free lock files); returns the bytes freed."""
    freed = 0
    for entry in chosen:
        freed += entry.bytes
        for path in entry.paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for lock in entry.locks:
            _remove_free_lock(lock)
        if entry.kind in ("features", "tokens"):
            _prune_empty(entry.paths[0].parent)
        elif entry.kind == "hf":
            _prune_empty(entry.paths[0].parent, levels=1)  # hf/<dataset>/, not hf/ itself
    return freed


def _held(lock: Path) -> bool:
    """Whether a running process holds the lock (it is filling that entry now)."""
    if fcntl is None:
        return False
    try:
        with lock.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False  # gone: nobody holds it
    return False


def _remove_free_lock(lock: Path) -> None:
    """Unlink a lock file while holding it, so no writer that holds it loses it."""
    try:
        with lock.open("rb") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # a process is writing this entry again: its lock stays
            lock.unlink(missing_ok=True)
    except OSError:
        pass  # already gone


def _prune_empty(folder: Path, levels: int = _PRUNED_LEVELS) -> None:
    """Remove the entry's split, task and model folders that are left empty."""
    for _ in range(levels):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or gone): the folders above are not empty either
        folder = folder.parent
