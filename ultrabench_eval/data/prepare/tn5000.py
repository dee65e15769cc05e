"""TN5000: benign vs malignant thyroid nodules (our preparer; ultrabench has none).

The figshare archive unpacks to `TN5000_forReview/` (in some copies nested twice) in Pascal VOC
layout: `JPEGImages/<id>.jpg`, `Annotations/<id>.xml` (one `<object>` per nodule, whose `<name>`
is `0` for benign and `1` for malignant, with its `<bndbox>`) and `ImageSets/Main/train.txt`,
`val.txt` and `test.txt` (ids, one per line; `trainval.txt` is their union and is not read).

The official split is kept (train, val -> validation, test: 3500 / 500 / 1000 on the full
dataset, the sizes the US-JEPA paper reports). An image is malignant when any of its nodules
is. Scan masks are derived from the images; the archive has no patient identifiers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare.base import Preparer, find_root, listing, require
from ultrabench_eval.data.prepare.ultrabench_format import (
    read_gray,
    write_image_and_scan_mask,
    write_splits,
)

DATASET = "tn5000_v1"
CLASSES = ("benign", "malignant")
# object names seen in the archive ("0"/"1"); the words are accepted too
NAME_TO_LABEL = {"0": 0, "1": 1, "benign": 0, "malignant": 1}
SPLIT_FILES = {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LAYOUT = "JPEGImages/<id>.jpg, Annotations/<id>.xml and ImageSets/Main/{train,val,test}.txt"


def _is_root(folder: Path) -> bool:
    main = folder / "ImageSets" / "Main"
    return (
        (folder / "JPEGImages").is_dir()
        and (folder / "Annotations").is_dir()
        and all((main / name).is_file() for name in SPLIT_FILES.values())
    )


def read_split_ids(root: Path) -> dict[str, list[str]]:
    main = root / "ImageSets" / "Main"
    return {
        split: [line.split()[0] for line in (main / name).read_text().splitlines() if line.strip()]
        for split, name in SPLIT_FILES.items()
    }


def image_path(root: Path, ident: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (ident + suffix, ident + suffix.upper()):
            path = root / "JPEGImages" / candidate
            if path.is_file():
                return path
    return None


def read_nodules(path: Path) -> list[dict]:
    """[{"label": 0|1, "box": [x0, y0, x1, y1]}] from a VOC annotation; ValueError if it is
    not one."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"{path.name} is not readable XML ({exc})") from None
    nodules = []
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip().lower()
        if name not in NAME_TO_LABEL:
            raise ValueError(f"{path.name}: nodule class {name!r} is not 0/1 (benign/malignant)")
        box = obj.find("bndbox")
        coords = [] if box is None else [box.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
        nodules.append(
            {
                "label": NAME_TO_LABEL[name],
                "box": [int(float(c)) for c in coords] if all(coords) and coords else None,
            }
        )
    if not nodules:
        raise ValueError(f"{path.name} has no nodule (<object>)")
    return nodules


def locate(raw: Path) -> Path:
    root = find_root(raw, _is_root, "TN5000", LAYOUT)
    ids = read_split_ids(root)
    problems = []
    seen = Counter(i for split in ids.values() for i in split)
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        problems.append(f"ids listed in two split files: {listing(twice)}")
    everything = sorted(seen)
    missing = [i for i in everything if image_path(root, i) is None]
    if missing:
        problems.append(f"JPEGImages/<id>.jpg missing for {listing(missing)}")
    unannotated = [i for i in everything if not (root / "Annotations" / f"{i}.xml").is_file()]
    if unannotated:
        problems.append(f"Annotations/<id>.xml missing for {listing(unannotated)}")
    bad = []
    for ident in everything:
        if ident in unannotated:
            continue
        try:
            read_nodules(root / "Annotations" / f"{ident}.xml")
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        problems.append(f"bad annotations: {listing(bad)}")
    require(problems, root, "TN5000")
    return root


def write(root: Path, out: Path) -> None:
    folder = out / DATASET
    splits: dict[str, list[dict]] = {}
    for split, ids in read_split_ids(root).items():
        records = []
        for ident in ids:
            source = image_path(root, ident)
            if source is None:
                raise UserError(f"TN5000 image {ident} vanished from {root / 'JPEGImages'}")
            nodules = read_nodules(root / "Annotations" / f"{ident}.xml")
            label = max(n["label"] for n in nodules)
            record = write_image_and_scan_mask(folder, ident, read_gray(source))
            record.update(
                source=source.name,
                pathology=CLASSES[label],
                nodules=[{"pathology": CLASSES[n["label"]], "box": n["box"]} for n in nodules],
                label=label,
            )
            records.append(record)
        splits[split] = records
    write_splits(folder, splits)


PREPARER = Preparer(
    id="ubench:tn5000",
    dataset=DATASET,
    layout=LAYOUT,
    download="https://doi.org/10.6084/m9.figshare.28455641 (TN5000_forReview.zip, unzipped)",
    split="the official ImageSets/Main split (train / val -> validation / test)",
    locate=locate,
    write=write,
)
