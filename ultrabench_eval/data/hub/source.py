"""Where a Hugging Face dataset comes from, and how its columns and splits become a task.

A `HubSource` is a task card's `hf:` block, or what `--data` names on the command line:

- `hf://org/name` (optionally `@revision`): a dataset on the hub, loaded with `datasets`;
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`;
- a folder of parquet files (as `ubench export` writes, or a hub repository cloned), or an
  imagefolder (`train/<class>/*.png`...), or a single parquet file.

A folder that holds task folders (`<task>/train.json`) is a dataset root, not a source: `--data`
keeps its old meaning there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from annotated_types import Ge, Gt, Le, MinLen

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.validation import Hint

HUB_PREFIX = "hf://"
# Split names the hub uses, for each of ours (in the order tried).
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing"),
}
DEFAULT_VALIDATION_FRACTION = 0.1
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
_DATA_SUFFIXES = {".parquet", ".arrow"}
# A repository id as the hub writes it: org/name, letters, digits, - _ .
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")

ColumnName = Annotated[str, MinLen(1), Hint("a column of the dataset, e.g. image")]


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face dataset as a task's data: where it is (`id` on the hub, or a local
    `path`), which columns hold what (None: found from the features), which of its splits are
    ours, and how a missing validation split is carved from train."""

    __pydantic_config__ = {"extra": "forbid"}  # noqa: RUF012

    id: Annotated[str, MinLen(1), Hint("a hub dataset id, e.g. org/name")] | None = None
    path: Annotated[str, MinLen(1), Hint("a local dataset folder or parquet file")] | None = None
    revision: Annotated[str, MinLen(1), Hint("a branch, tag or commit")] | None = None
    config: Annotated[str, MinLen(1), Hint("the dataset's configuration name")] | None = None
    image_column: ColumnName | None = None
    label_column: ColumnName | None = None
    group_column: ColumnName | None = None
    mask_column: ColumnName | None = None
    scan_mask_column: ColumnName | None = None
    # our split -> the dataset's split name; a split left out is found by its usual names
    splits: Annotated[
        dict[str, Annotated[str, MinLen(1)]],
        Hint("e.g. {train: train, validation: valid, test: test}"),
    ] = field(default_factory=dict)
    validation_fraction: Annotated[
        float, Gt(0), Le(0.5), Hint("the share of train carved out, e.g. 0.1")
    ] = DEFAULT_VALIDATION_FRACTION
    seed: Annotated[int, Ge(0), Hint("the carving seed, e.g. 0")] = 0

    def __post_init__(self) -> None:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of id (a hub dataset) or path (a local one)")
        unknown = sorted(set(self.splits) - set(SPLIT_ALIASES))
        if unknown:
            raise ValueError(
                f"splits maps {', '.join(unknown)}: only train, validation and test are ours"
            )

    @property
    def is_hub(self) -> bool:
        return self.id is not None

    @property
    def label(self) -> str:
        """How the source is named to the user (and in records)."""
        if self.id is not None:
            return HUB_PREFIX + self.id + (f"@{self.revision}" if self.revision else "")
        return str(self.path)

    @property
    def slug(self) -> str:
        """A file-name-safe name for the source: the hub id, or the folder's name plus a digest
        of its full path (two folders of one name are two sources)."""
        if self.id is not None:
            return _safe(self.id.replace("/", "--")) + (f"@{self.config}" if self.config else "")
        digest = hashlib.sha256(str(Path(self.path).resolve()).encode()).hexdigest()[:8]
        return f"{_safe(Path(self.path).name) or 'dataset'}-{digest}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "-", text).strip("-.")


def parse_hub_id(text: str) -> tuple[str, str | None]:
    """`hf://org/name[@revision]` (or `org/name[@revision]`, or `hf://datasets/org/name`) ->
    (id, revision); one line when it is not an id."""
    body = text[len(HUB_PREFIX) :] if text.startswith(HUB_PREFIX) else text
    body = body.removeprefix("datasets/")
    repo, _, revision = body.partition("@")
    repo = repo.strip("/")
    if not _REPO_ID.fullmatch(repo) or (_ and not revision) or "@" in revision:
        raise UserError(
            f"'{text}' is not a hub dataset id: write hf://ORG/NAME, optionally @REVISION "
            "(e.g. hf://org/thyroid-us@main)"
        )
    return repo, revision or None


def source_from_data_flag(text: str | None) -> HubSource | None:
    """The HubSource `--data TEXT` names, or None when TEXT is a dataset root (or not given)."""
    if not text:
        return None
    if text.startswith(HUB_PREFIX):
        repo, revision = parse_hub_id(text)
        return HubSource(id=repo, revision=revision)
    path = Path(text).expanduser()
    if is_local_dataset(path):
        return HubSource(path=str(path.resolve()))
    if path.is_file():
        raise UserError(
            f"--data {text} is a file, but neither a parquet nor an arrow file: give a dataset "
            "root (a folder of task folders) or a Hugging Face dataset"
        )
    return None


def is_local_dataset(path: Path) -> bool:
    """Whether `path` is a `datasets` dataset (save_to_disk folder, parquet or arrow files, an
    imagefolder) rather than a dataset root of task folders."""
    if path.is_file():
        return path.suffix.lower() in _DATA_SUFFIXES
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return True
    if (path / "train.json").is_file() or any(path.glob("*/train.json")):
        return False  # a task folder, or a root of them
    return _holds_data_files(path)


def _holds_data_files(path: Path, depth: int = 3) -> bool:
    """Parquet or arrow files, or images, within `depth` folder levels (an imagefolder keeps
    them in split/class folders)."""
    suffixes = _DATA_SUFFIXES | IMAGE_SUFFIXES
    level = [path]
    for _ in range(depth + 1):
        below = []
        for folder in level:
            try:
                children = list(folder.iterdir())
            except OSError:
                continue
            for child in children:
                if child.name.startswith("."):
                    continue
                if child.is_file() and child.suffix.lower() in suffixes:
                    return True
                if child.is_dir():
                    below.append(child)
        level = below
    return False


def parse_split_map(text: str) -> dict[str, str]:
    """`--hf-splits train=train,validation=valid,test=test` -> {ours: theirs}; one line when a
    part is not OURS=THEIRS or names a split we do not have."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not theirs or ours not in SPLIT_ALIASES:
            raise UserError(
                f"--hf-splits '{text}': write OURS=THEIRS pairs with OURS one of train, "
                "validation, test (e.g. --hf-splits validation=valid,test=eval)"
            )
        mapping[ours] = theirs
    return mapping
