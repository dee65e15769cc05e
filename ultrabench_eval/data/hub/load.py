"""Loading a `HubSource` with `datasets`: the hub (pinned to a commit), a `save_to_disk` folder,
parquet files or an imagefolder. Every failure is one line: an unreachable hub, a missing
dataset, a folder `datasets` cannot read.

Hub access happens only here, and only for a source with an `id`. With `HF_HUB_OFFLINE=1` a
dataset already in the `datasets` cache loads without the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import one_line
from ultrabench_eval.data.hub.source import SPLIT_ALIASES, HubSource

_OFFLINE_FIX = (
    "check the network (or HF_ENDPOINT), or load it where the hub is reachable and pass the "
    "folder `save_to_disk` writes to --data; with HF_HUB_OFFLINE=1 a dataset already in the "
    "datasets cache loads offline"
)


@dataclass(frozen=True)
class LoadedSource:
    """A source's splits as `datasets.Dataset`s (ours -> theirs resolved), with provenance."""

    source: HubSource
    splits: dict[str, Any]  # the dataset's own split name -> datasets.Dataset
    revision: str | None  # the commit a hub dataset was loaded at
    license: str = ""
    citation: str = ""
    description: str = ""
    homepage: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprints(self) -> dict[str, str]:
        return {name: ds._fingerprint for name, ds in self.splits.items()}

    @property
    def features(self) -> Any:
        """The features of the first split (every split shares them in a `DatasetDict`)."""
        return next(iter(self.splits.values())).features


def load_source(source: HubSource, progress: bool = False) -> LoadedSource:
    """The source's splits, loaded with `datasets` (downloaded once into its cache)."""
    sys.stderr.write(f"loading {source.label} with datasets\n")
    with _quiet(progress):
        if source.is_hub:
            return _load_hub(source)
        return _load_local(source)


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """`datasets` logs and draws a bar per split; only our own lines are wanted."""
    import datasets

    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    level = datasets.logging.get_verbosity()
    # its log says again, on lines of its own, what the one error line says
    datasets.logging.set_verbosity(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        datasets.logging.set_verbosity(level)
        if was_enabled:
            datasets.enable_progress_bars()


def _load_local(source: HubSource) -> LoadedSource:
    import datasets

    path = Path(source.path)
    if not path.exists():
        raise UserError(
            f"dataset {path} not found (give a save_to_disk folder, parquet files "
            "or an imagefolder)"
        )
    try:
        if path.is_dir() and (
            (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
        ):
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            kind = "arrow" if path.suffix.lower() == ".arrow" else "parquet"
            loaded = datasets.load_dataset(kind, data_files=str(path), name=source.config)
        else:
            loaded = datasets.load_dataset(str(path), name=source.config)
    except Exception as exc:  # datasets raises many types for a folder it cannot read
        raise UserError(
            f"cannot load dataset {path} with `datasets`: {_first_line(exc)} (give a "
            "save_to_disk folder, parquet files or an imagefolder of split/class/image files)"
        ) from exc
    splits = _as_splits(loaded, str(path))
    info = next(iter(splits.values())).info
    return LoadedSource(
        source,
        splits,
        revision=None,
        license=info.license or _readme_license(path),
        citation=info.citation or "",
        description=info.description or "",
        homepage=info.homepage or "",
    )


def _load_hub(source: HubSource) -> LoadedSource:
    import datasets

    revision, card, files = _resolve_revision(source)
    try:
        loaded = datasets.load_dataset(source.id, name=source.config, revision=revision)
    except Exception as exc:
        raise hub_error(source, exc) from exc
    splits = _as_splits(loaded, source.label)
    info = next(iter(splits.values())).info
    return LoadedSource(
        source,
        splits,
        revision=revision,
        license=_card_value(card, "license") or info.license or "",
        citation=info.citation or "",
        description=info.description or "",
        homepage=info.homepage or f"https://huggingface.co/datasets/{source.id}",
        extra={"files": files},
    )


def _resolve_revision(source: HubSource) -> tuple[str | None, Any, list[str] | None]:
    """The commit the source's revision names (a branch moves; a record names the commit), the
    dataset card's metadata and the repository's files. Offline: the revision as given, and
    neither (None)."""
    if offline():
        return source.revision, None, None
    import huggingface_hub

    try:
        info = huggingface_hub.HfApi().dataset_info(source.id, revision=source.revision)
    except Exception as exc:  # hub errors come in many types
        raise hub_error(source, exc) from exc
    files = [sibling.rfilename for sibling in info.siblings or []]
    return info.sha or source.revision, info.card_data, files


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def hub_error(source: HubSource, exc: BaseException) -> UserError:
    text = _first_line(exc)
    name = type(exc).__name__
    if "RepositoryNotFound" in name or "DatasetNotFound" in name or "404" in text:
        return UserError(
            f"dataset {source.label} not found on the hub: check the id and revision (private "
            "or gated datasets need `huggingface-cli login`)"
        )
    if "Offline" in name or "offline" in text.lower():
        return UserError(
            f"cannot load {source.label}: HF_HUB_OFFLINE is set and the dataset is not in the "
            "datasets cache; unset it where the hub is reachable, or pass a local copy (a "
            "save_to_disk folder) to --data"
        )
    return UserError(
        f"cannot reach the Hugging Face hub for {source.label} ({text}); {_OFFLINE_FIX}"
    )


def _card_value(card: Any, key: str) -> str:
    value = getattr(card, key, None) if card is not None else None
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value) if value else ""


def _readme_license(folder: Path) -> str:
    """The `license:` of a dataset card (README.md front matter) beside local files."""
    readme = folder / "README.md" if folder.is_dir() else folder.parent / "README.md"
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    if not text.startswith("---"):
        return ""
    import yaml

    header = text[3:].split("\n---", 1)[0]
    try:
        meta = yaml.safe_load(header)
    except yaml.YAMLError:
        return ""
    if not isinstance(meta, dict):
        return ""
    value = meta.get("license_name") or meta.get("license") or ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _as_splits(loaded: Any, where: str) -> dict[str, Any]:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        splits = dict(loaded)
    elif isinstance(loaded, datasets.Dataset):
        splits = {str(loaded.split or "train"): loaded}
    else:
        raise UserError(
            f"{where} loads as a {type(loaded).__name__}, not a dataset of splits (streaming "
            "and iterable datasets are not read: save it with save_to_disk first)"
        )
    if not splits:
        raise UserError(f"dataset {where} has no splits")
    return splits


def map_splits(loaded: LoadedSource) -> dict[str, str | None]:
    """Our split -> the dataset's split name (None: validation, to be carved from train).
    Named splits first, then the usual names; no train or test is one line."""
    available = list(loaded.splits)
    mapping: dict[str, str | None] = {}
    for ours, aliases in SPLIT_ALIASES.items():
        named = loaded.source.splits.get(ours)
        if named is not None:
            if named not in loaded.splits:
                raise UserError(
                    f"dataset {loaded.source.label} has no split '{named}' (named for {ours}; "
                    f"it has {', '.join(available)})"
                )
            mapping[ours] = named
            continue
        mapping[ours] = next((a for a in aliases if a in loaded.splits), None)
    for ours in ("train", "test"):
        if mapping[ours] is None:
            raise UserError(
                f"dataset {loaded.source.label} has no {ours} split (it has "
                f"{', '.join(available)}): name the one to use with --hf-splits {ours}=NAME "
                f"(or `splits: {{{ours}: NAME}}` in the card's hf block)"
            )
    used = [name for name in mapping.values() if name is not None]
    if len(set(used)) != len(used):
        raise UserError(
            f"dataset {loaded.source.label}: one split serves twice ({mapping}); each of train, "
            "validation and test needs its own"
        )
    return mapping


def _first_line(exc: BaseException) -> str:
    """`one_line`, named by its type when it has no message, cut to 300 characters."""
    text = one_line(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
