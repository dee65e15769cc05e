"""`ubench export`: a prepared task as a Hugging Face `datasets` folder, ready to upload.

The folder holds a dataset card (`README.md`, whose front matter tells the hub the splits and
the licence), the task card (`ubench-task.yaml`) and the splits as parquet shards under
`data/`. Images and masks go in as the files' own bytes, beside their paths relative to the
task folder, so the export changes no pixel and keeps every image's identity.

The folder is built aside (`.<OUT>.partial-<pid>`) and renamed into place at the end: OUT is
either the whole export or what it was before.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ultrabench_eval.core.atomic import DISK_ERRORS
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import Record, dataset_path, open_dataset
from ultrabench_eval.data.task_card import SPLITS, TaskCard, card_yaml

CARD_FILE = "ubench-task.yaml"
DATA_DIR = "data"
DEFAULT_MAX_SHARD_BYTES = 500 << 20
# Licence ids the hub knows that datasets of this kind use; anything else is `other`.
HUB_LICENSES = (
    "mit",
    "apache-2.0",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nd-4.0",
    "bsd-3-clause",
    "gpl-3.0",
    "unknown",
)
TAGS = ("medical", "ultrasound", "ultrabench-eval")
_SLUG_LENGTH = 64


@dataclass(frozen=True)
class SplitExport:
    """One exported split: its rows, its parquet shards and their size on disk."""

    rows: int
    shards: int
    bytes: int


@dataclass(frozen=True)
class ExportSummary:
    """What `export_task` wrote: the folder and each split's rows, shards and bytes."""

    out: Path
    splits: dict[str, SplitExport]


def export_task(
    card: TaskCard,
    data_root: Path,
    out: Path,
    *,
    cache_root: Path,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    log: Callable[[str], Any] = print,
    progress: bool = False,
) -> ExportSummary:
    """Write the prepared task `card` (its folder under `data_root`) to `out` as a Hugging Face
    dataset folder: `README.md`, `ubench-task.yaml` and `data/<split>-<i>-of-<n>.parquet`.

    Each shard holds at most `max_shard_bytes` of image and mask file bytes (and at least one
    row). An `out` that exists and is not empty is replaced only with `overwrite`. `progress`
    keeps the `datasets` progress bars on."""
    if max_shard_bytes <= 0:
        raise UserError(f"the shard size must be positive, got {max_shard_bytes} bytes")
    shown = str(out)  # as the user wrote it: the README is public, their absolute path is not
    out = Path(out).expanduser().absolute()
    # the task's own data, which `--overwrite` must never delete: its folder, or its dataset
    source = Path(card.hf.path) if card.hf is not None and card.hf.path else None
    source = source or dataset_path(card, data_root)
    _check_out(out, source, overwrite)
    dataset = open_dataset(card, data_root, digest_cache=cache_root)
    records = {name: dataset.splits[name].records for name in SPLITS}
    layout = _Layout.of(card, records)
    plans = {name: _plan_shards(dataset.root, records[name], max_shard_bytes) for name in SPLITS}

    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():  # left by an earlier run that had this process id
            shutil.rmtree(partial)
        (partial / DATA_DIR).mkdir(parents=True)
        splits = {}
        with _progress_bars(progress):
            for name in SPLITS:
                splits[name] = _write_split(name, dataset.root, plans[name], layout, partial, log)
        rows = {name: s.rows for name, s in splits.items()}
        (partial / CARD_FILE).write_text(exported_card_yaml(card, rows), encoding="utf-8")
        (partial / "README.md").write_text(readme_text(card, rows, shown), encoding="utf-8")
        _publish(partial, out, overwrite)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if _disk_full(exc):
            raise UserError(
                f"cannot write the export to {out}: {exc.strerror or exc}; free some space or "
                "choose another --out"
            ) from exc
        raise
    except BaseException:
        # an interrupt or an error leaves no half-built folder behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExportSummary(out=out, splits=splits)


def _check_out(out: Path, source: Path, overwrite: bool) -> None:
    """Refuse, before any work, an OUT that cannot or may not be replaced."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"--out {out} is not a folder: choose a folder path for the export")
    with contextlib.suppress(OSError):
        # `--overwrite` deletes the old OUT: it must not hold the task's own data
        if source.resolve().is_relative_to(out.resolve()):
            raise UserError(f"--out {out} holds the task's own data {source}: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} exists and is not empty: pass --overwrite or choose another --out")


@dataclass(frozen=True)
class _Layout:
    """The exported columns, in order, and the task facts that decide them."""

    card: TaskCard
    scan_masks: bool  # some record has a scan mask: the column exists

    @classmethod
    def of(cls, card: TaskCard, records: dict[str, Sequence[Record]]) -> _Layout:
        scan = any(r.scan_mask for split in records.values() for r in split)
        layout = cls(card, scan)
        names = layout.names
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise UserError(
                f"task '{card.name}': column name(s) {', '.join(repeated)} used twice (image, "
                "label or mask, scan_mask and the card's group_field must differ): rename the "
                "card's field"
            )
        return layout

    @property
    def names(self) -> list[str]:
        card = self.card
        target = card.mask_field if card.is_segmentation else "label"
        names = ["image", str(target)]
        if self.scan_masks:
            names.append("scan_mask")
        if card.group_field:
            names.append(card.group_field)
        return names

    def features(self) -> Any:
        from datasets import ClassLabel, Features, Image, Value

        card = self.card
        columns: dict[str, Any] = {"image": Image()}
        if card.is_segmentation:
            columns[str(card.mask_field)] = Image()
        else:
            columns["label"] = ClassLabel(names=list(card.classes))
        if self.scan_masks:
            columns["scan_mask"] = Image()
        if card.group_field:
            columns[card.group_field] = Value("string")
        return Features(columns)

    def columns(self, root: Path, records: Sequence[Record]) -> dict[str, list[Any]]:
        """The shard's rows as columns, the files read as their bytes."""
        card = self.card
        columns: dict[str, list[Any]] = {"image": [_file(root, r.image) for r in records]}
        if card.is_segmentation:
            columns[str(card.mask_field)] = [_file(root, r.mask) for r in records]
        else:
            columns["label"] = [r.label for r in records]
        if self.scan_masks:
            columns["scan_mask"] = [_file(root, r.scan_mask) for r in records]
        if card.group_field:
            columns[card.group_field] = [r.group for r in records]
        return columns


def _file(root: Path, rel: str | None) -> dict[str, Any] | None:
    """An `Image` value: the file's bytes, unchanged, and its path relative to the task."""
    if rel is None:
        return None
    try:
        return {"bytes": (root / rel).read_bytes(), "path": rel}
    except OSError as exc:
        raise UserError(f"cannot read {root / rel}: {exc.strerror or exc}") from None


def _record_bytes(root: Path, record: Record) -> int:
    paths = (record.image, record.mask, record.scan_mask)
    try:
        return sum((root / p).stat().st_size for p in paths if p is not None)
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None


def _plan_shards(root: Path, records: Sequence[Record], max_bytes: int) -> list[Sequence[Record]]:
    """Consecutive runs of records, each at most `max_bytes` of files (one record at least)."""
    shards: list[Sequence[Record]] = []
    start, size = 0, 0
    for index, record in enumerate(records):
        nbytes = _record_bytes(root, record)
        if index > start and size + nbytes > max_bytes:
            shards.append(records[start:index])
            start, size = index, 0
        size += nbytes
    shards.append(records[start:])
    return shards


def shard_name(split: str, index: int, count: int) -> str:
    """The hub's shard naming: `train-00000-of-00002.parquet`."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def _write_split(
    split: str,
    root: Path,
    shards: list[Sequence[Record]],
    layout: _Layout,
    folder: Path,
    log: Callable[[str], Any],
) -> SplitExport:
    from datasets import Dataset

    features = layout.features()
    written = 0
    for index, records in enumerate(shards):
        log(f"writing {split} shard {index + 1}/{len(shards)} ({len(records)} rows)")
        path = folder / DATA_DIR / shard_name(split, index, len(shards))
        # one shard in memory at a time: its files are read here and dropped after writing
        table = Dataset.from_dict(layout.columns(root, records), features=features)
        table.to_parquet(str(path))
        del table
        written += path.stat().st_size
    return SplitExport(rows=sum(map(len, shards)), shards=len(shards), bytes=written)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """`datasets`' progress bars on or off for the block, as they were afterwards."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    if enabled:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_disabled:
            datasets.disable_progress_bars()
        else:
            datasets.enable_progress_bars()


def _publish(partial: Path, out: Path, overwrite: bool) -> None:
    """Rename the built folder to `out`; with `overwrite`, the old one goes only once the new
    one is in place."""
    if overwrite and out.is_dir() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(partial, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(partial, out)  # replaces an empty folder in one step
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):  # filled while the export ran
            raise UserError(
                f"{out} exists and is not empty: pass --overwrite or choose another --out"
            ) from None
        raise


def _disk_full(exc: OSError) -> bool:
    if exc.errno in DISK_ERRORS:
        return True
    # pyarrow reports a full disk as an OSError without errno, naming it in the message
    return any(os.strerror(code) in str(exc) for code in DISK_ERRORS)


# -- the task card and the dataset card -------------------------------------------------------


def exported_card_yaml(card: TaskCard, split_sizes: dict[str, int]) -> str:
    """The task card the export carries: where the task came from left out, `split_sizes` the
    exported counts. `TaskCard.from_dict` reads it back."""
    return card_yaml(
        card,
        hf=None,
        # loaded back, the task reads the export: not the generator's or preparer's folder
        generator=None,
        preparer=None,
        # the exported rows hold the class index in the `label` column, whatever it was called
        label_field=None if card.is_segmentation else "label",
        split_sizes={name: int(split_sizes[name]) for name in SPLITS if name in split_sizes},
    )


def hub_license(text: str) -> tuple[str, str | None]:
    """The hub licence id for a card's licence text, and the `license_name` when it is `other`:
    `"CC BY-NC-SA 4.0"` -> `("cc-by-nc-sa-4.0", None)`, `""` -> `("unknown", None)`,
    `"see the Zenodo record"` -> `("other", "see-the-zenodo-record")`."""
    key = _slug(re.sub(r"\blicen[cs]e\b", " ", text, flags=re.IGNORECASE))
    if not key:
        return "unknown", None
    for known in HUB_LICENSES:
        if key == _slug(known):
            return known, None
    return "other", _slug(text)[:_SLUG_LENGTH].rstrip("-") or "other"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def readme_text(card: TaskCard, split_sizes: dict[str, int], out: Path | str) -> str:
    """The dataset card: front matter the hub reads (licence, task, splits), then what the
    task is and how to load it."""
    license_id, license_name = hub_license(card.license)
    front: dict[str, Any] = {"pretty_name": card.name, "license": license_id}
    if license_name:
        front["license_name"] = license_name
    front["task_categories"] = [
        "image-segmentation" if card.is_segmentation else "image-classification"
    ]
    front["tags"] = list(TAGS)
    front["configs"] = [
        {
            "config_name": "default",
            "data_files": [
                {"split": name, "path": f"{DATA_DIR}/{name}-*"}
                for name in SPLITS
                if name in split_sizes
            ],
        }
    ]
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---"]
    lines += ["", f"# {card.name}", ""]
    if card.description:
        lines += [card.description.strip(), ""]
    kind = "segmentation" if card.is_segmentation else "classification"
    target = (
        f"the label mask in column `{card.mask_field}`"
        if card.is_segmentation
        else "the class index in column `label`"
    )
    lines += [f"An ultrasound image {kind} task: each row holds an image (`image`) and {target}."]
    if card.organ:
        lines += ["", f"- Organ: {card.organ}"]
    if card.group_field:
        lines += [f"- Groups (e.g. patients): column `{card.group_field}`"]
    lines += ["", "## Classes", ""]
    if card.is_segmentation:
        lines += ["| index | name | pixel value |", "|---|---|---|"]
        for index, (name, value) in enumerate(zip(card.classes, card.pixel_values, strict=True)):
            lines.append(f"| {index} | {_cell(name)} | {value} |")
    else:
        lines += ["| index | name |", "|---|---|"]
        lines += [f"| {i} | {_cell(name)} |" for i, name in enumerate(card.classes)]
    lines += ["", "## Splits", "", "| split | images |", "|---|---|"]
    lines += [f"| {name} | {split_sizes[name]} |" for name in SPLITS if name in split_sizes]
    lines += ["", "## Source", "", card.source.strip() or "not given", ""]
    lines += ["## Licence", "", card.license.strip() or "not given", ""]
    if card.citation.strip():
        lines += ["## Citation", ""]
        citation = card.citation.strip()
        lines += ["```bibtex", citation, "```"] if citation.startswith("@") else [citation]
        lines.append("")
    lines += _loading(card, str(out))
    return "\n".join(lines) + "\n"


def _loading(card: TaskCard, out: str) -> list[str]:
    return [
        "## Loading",
        "",
        "```python",
        "import datasets",
        "",
        f'ds = datasets.load_dataset("{out}")',
        '# once uploaded: datasets.load_dataset("ORG/NAME")',
        "```",
        "",
        "With ultrabench-eval (which reads the task card `ubench-task.yaml`):",
        "",
        "```bash",
        f"ubench bench --tasks {card.name} --data {out}",
        f"huggingface-cli upload ORG/NAME {out} --repo-type dataset",
        f"ubench bench --tasks {card.name} --data hf://ORG/NAME",
        "```",
    ]


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")
