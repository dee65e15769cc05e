"""Which columns of a `datasets` dataset hold the image, the label, the group and the masks, and
its labels as the task's class indices.

A column named in the card's `hf:` block (or by a flag) is taken as named and checked; otherwise
it is found from the features: the image is the `Image` column (`image` when there are several),
the label the card's `label_field` when the dataset has it, else its one `ClassLabel` column,
the group the card's `group_field` or a column with a usual patient/case name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub.source import HubSource

# Names a patient, case or video column goes by (a split by image would leak between splits).
GROUP_NAMES = (
    "patient",
    "patient_id",
    "subject",
    "subject_id",
    "case",
    "case_id",
    "study",
    "study_id",
    "video",
    "video_id",
    "group",
)
MASK_NAMES = ("mask", "label_mask", "annotation", "segmentation", "seg")
SCAN_MASK_NAME = "scan_mask"
_SHOWN = 3


@dataclass(frozen=True)
class Columns:
    image: str
    label: str | None  # None for a segmentation task
    group: str | None
    mask: str | None  # a segmentation task's label mask
    scan_mask: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "image": self.image,
            "label": self.label,
            "group": self.group,
            "mask": self.mask,
            "scan_mask": self.scan_mask,
        }


def is_image(feature: Any) -> bool:
    import datasets

    return isinstance(feature, datasets.Image)


def find_columns(
    features: Any,
    source: HubSource,
    where: str,
    *,
    segmentation: bool = False,
    label_field: str | None = None,
    group_field: str | None = None,
    mask_field: str | None = None,
) -> Columns:
    """The task's columns among `features` (a `datasets.Features`); one line when one is
    missing or of the wrong kind. `label_field` etc.: the card's record keys, taken as column
    names when the dataset has them."""
    names = list(features)
    listing = ", ".join(f"{n} ({_kind(features[n])})" for n in names)

    def named(column: str, role: str, flag: str) -> str:
        if column not in features:
            raise UserError(
                f"dataset {where} has no column '{column}' (the {role}; its columns: {listing}): "
                f"correct {flag}"
            )
        return column

    scan_mask = source.scan_mask_column
    if scan_mask is not None:
        _image_column(features, named(scan_mask, "scan mask", "--scan-mask-column"), where)
    elif SCAN_MASK_NAME in features and is_image(features[SCAN_MASK_NAME]):
        scan_mask = SCAN_MASK_NAME
    mask = None
    if segmentation:
        mask = _mask_column(features, source, where, mask_field, listing)
    image = source.image_column
    if image is not None:
        _image_column(features, named(image, "image", "--image-column"), where)
    else:
        image = _find_image(features, {mask, scan_mask}, where, listing)
    label = None
    if not segmentation:
        label = _label_column(features, source, where, label_field, listing)
    group = source.group_column
    if group is not None:
        _group_column(features, named(group, "group", "--group-column"), where)
    else:
        candidates = [group_field] if group_field else []
        candidates += [n for n in GROUP_NAMES if n not in candidates]
        group = next((c for c in candidates if c in features and _groupable(features[c])), None)
    taken = [c for c in (image, label, mask, scan_mask) if c is not None]
    if len(set(taken)) != len(taken):
        raise UserError(
            f"dataset {where}: one column serves twice ({', '.join(taken)}): name "
            "each with its own flag (--image-column, --label-column...)"
        )
    return Columns(image=image, label=label, group=group, mask=mask, scan_mask=scan_mask)


def _kind(feature: Any) -> str:
    """How a column's feature reads in a message: Image, ClassLabel, or the value's type."""
    import datasets

    if isinstance(feature, datasets.Value):
        return str(feature.dtype)
    return type(feature).__name__


def _image_column(features: Any, column: str, where: str) -> None:
    if not is_image(features[column]):
        raise UserError(
            f"dataset {where}: column '{column}' holds {_kind(features[column])}, not images "
            "(it must be a datasets Image feature): name the image column with --image-column"
        )


def _find_image(features: Any, taken: set, where: str, listing: str) -> str:
    images = [n for n in features if is_image(features[n]) and n not in taken]
    if not images:
        raise UserError(
            f"dataset {where} has no image column (its columns: {listing}): a task needs a "
            "datasets Image feature; cast the column with `cast_column(NAME, Image())`"
        )
    if len(images) > 1:
        if "image" in images:
            return "image"
        raise UserError(
            f"dataset {where} has several image columns ({', '.join(images)}): name the one "
            "to use with --image-column"
        )
    return images[0]


def _mask_column(
    features: Any, source: HubSource, where: str, mask_field: str | None, listing: str
) -> str:
    if source.mask_column is not None:
        column = source.mask_column
    else:
        candidates = [mask_field] if mask_field else []
        candidates += list(MASK_NAMES)
        column = next((c for c in candidates if c in features and is_image(features[c])), None)
    if column is None or column not in features:
        raise UserError(
            f"dataset {where} has no label-mask column for a segmentation task (its columns: "
            f"{listing}): name it with `mask_column` in the card's hf block"
        )
    _image_column(features, column, where)
    return column


def _label_column(
    features: Any, source: HubSource, where: str, label_field: str | None, listing: str
) -> str:
    import datasets

    column = source.label_column
    if column is None and label_field and label_field in features:
        column = label_field
    if column is None:
        labels = [n for n in features if isinstance(features[n], datasets.ClassLabel)]
        if len(labels) == 1:
            column = labels[0]
        elif "label" in features:
            column = "label"
        else:
            more = f" ({', '.join(labels)} are ClassLabel columns)" if labels else ""
            raise UserError(
                f"dataset {where} has no label column{more} (its columns: {listing}): name it "
                "with --label-column"
            )
    if column not in features:
        raise UserError(
            f"dataset {where} has no column '{column}' (the label; its columns: {listing}): "
            "correct --label-column"
        )
    if not _label_like(features[column]):
        raise UserError(
            f"dataset {where}: column '{column}' holds {_kind(features[column])}, not class "
            "labels (a ClassLabel, integer or text column): name the label with --label-column"
        )
    return column


def _label_like(feature: Any) -> bool:
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return True
    dtype = getattr(feature, "dtype", None) if isinstance(feature, datasets.Value) else None
    return dtype is not None and (
        dtype.startswith(("int", "uint")) or dtype in ("string", "large_string")
    )


def _groupable(feature: Any) -> bool:
    import datasets

    return isinstance(feature, (datasets.Value, datasets.ClassLabel))


def _group_column(features: Any, column: str, where: str) -> None:
    if not _groupable(features[column]):
        raise UserError(
            f"dataset {where}: column '{column}' holds {_kind(features[column])}, not a patient "
            "or case id (text or a number): correct --group-column"
        )


def dataset_classes(features: Any, split_labels: list[list[Any]], column: str) -> list[str]:
    """The class names a dataset's label column gives: its ClassLabel names, else its values
    sorted (numbers, and text that is all numbers, in numeric order: 2 before 10)."""
    import datasets

    feature = features[column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    values = {v for labels in split_labels for v in labels if v is not None}
    if not values:
        raise UserError(f"label column '{column}' holds no label")
    names = {str(v) for v in values}
    if all(_is_integer_text(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _is_integer_text(text: str) -> bool:
    return text.lstrip("-").isdigit()


def class_indices(
    features: Any, values: list[Any], column: str, classes: tuple[str, ...], where: str
) -> np.ndarray:
    """`values` of the label column as indices into `classes`; one line naming the first rows
    whose label is missing or not among them.

    A ClassLabel index is read as its name, and a name as the class of that name. A plain
    integer is the class of that name when the classes are numbers (labels 1, 2 for classes
    "1", "2"), else the class at that index."""
    import datasets

    feature = features[column]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    index = {name: i for i, name in enumerate(classes)}
    by_name = all(_is_integer_text(c) for c in classes)
    out = np.empty(len(values), dtype=np.int64)
    bad: list[str] = []
    missing: list[str] = []
    for row, value in enumerate(values):
        if value is None or (names is not None and value == -1):
            missing.append(f"row {row}")  # `datasets` writes a missing ClassLabel as -1
            continue
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            value = names[value]
        integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if integer and by_name:
            value = str(int(value))
        if isinstance(value, str) and value in index:
            out[row] = index[value]
        elif names is None and integer and not by_name and 0 <= value < len(classes):
            out[row] = int(value)
        else:
            bad.append(f"row {row}: {value!r}")
    if missing:
        raise UserError(
            f"dataset {where}: label column '{column}' has rows without a label (None or -1): "
            f"{_listed(missing)}; drop them first, e.g. ds.filter(lambda r: r['{column}'] is "
            f"not None and r['{column}'] != -1)"
        )
    if bad:
        raise UserError(
            f"dataset {where}: label column '{column}' holds values outside the card's classes "
            f"({', '.join(classes)}): {_listed(bad)}; use a card whose classes match (or leave "
            "--tasks out to take the dataset's own classes)"
        )
    return out


def _listed(items: list[str]) -> str:
    more = f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return "; ".join(items[:_SHOWN]) + more
