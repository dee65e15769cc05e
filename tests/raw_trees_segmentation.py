"""Small fake raw downloads for the UltraBench segmentation tasks, laid out the way each
dataset's real archive unpacks (as ultrabench 1.0.1's processors read them), with tiny
fan-shaped images and label masks whose pixel values are those of the real files.

Every builder returns the sizes (train, validation, test) the processor's split rule gives for
the tree it wrote. `prepare_and_read` prepares a tree as `ubench prepare` does and reads the
folder back through the task's card.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from raw_trees import MMOTU_COLOURS, fan_image, fan_polygon

from ultrabench_eval.data.dataset import Dataset, open_dataset
from ultrabench_eval.data.prepare.run import Prepared, prepare
from ultrabench_eval.data.task_card import SPLITS


def _save(path: Path, array: np.ndarray, palette: list[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if palette is not None:  # a palette PNG: the pixels are the class indices
        image = image.convert("P")
        image.putpalette(palette)
    image.save(path)


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.hypot(yy - centre[0], xx - centre[1]) < radius


def _sizes(total: int) -> dict[str, int]:
    """The sizes of ultrabench's two-step split of `total` images (or patients): 20 % to test,
    then 10 % of the rest to validation, as scikit-learn rounds them."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(list(range(total)), test_size=0.2)
    train, validation = train_test_split(rest, test_size=0.1)
    return {"train": len(train), "validation": len(validation), "test": len(test)}


# -- AUL (Zenodo 7272660): <class>/image/<n>.jpg, <class>/segmentation/{outline,liver,mass}/<n>.json
#    ([x, y] polygons); image 7 lacks its liver outline, as image 374 of the archive does

AUL_WITHOUT_LIVER = "images/normal_7.jpg"


def _box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def write_aul_masses(root: Path, per_class: int = 9) -> dict[str, int]:
    rng = np.random.default_rng(0)
    shape = (48, 64)
    outlines = {"outline": fan_polygon(shape), "liver": _box(12, 16, 52, 44)}
    number = 1
    for level, folder in enumerate(("Normal", "Benign", "Malignant")):
        for _ in range(per_class):
            image = np.repeat(fan_image(rng, shape, level, 3)[..., None], 3, axis=-1)
            _save(root / folder / "image" / f"{number}.jpg", image)
            parts = dict(outlines, mass=_box(26, 24, 36, 32)) if level else dict(outlines)
            if number == 7:
                del parts["liver"]
            for part, polygon in parts.items():
                path = root / folder / "segmentation" / part / f"{number}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(polygon))
            number += 1
    return _sizes(3 * per_class)


# -- CAMUS (CREATIS): database_nifti/patientNNNN/patientNNNN_{2CH,4CH}_half_sequence[_gt].nii.gz
#    and Info_{2CH,4CH}.cfg; the _gt volumes hold 0 background, 1 left ventricle, 2 myocardium,
#    3 left atrium


def camus_structures(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    label = np.zeros(shape, dtype=np.uint8)
    label[_disc(shape, (h * 0.45, w / 2), h * 0.2)] = 2
    label[_disc(shape, (h * 0.45, w / 2), h * 0.14)] = 1
    label[_disc(shape, (h * 0.8, w * 0.35), h * 0.1)] = 3  # off the axis: a flip shows
    return label


CAMUS_SHAPE = (48, 40)


def write_camus_structures(root: Path, patients: int = 5, frames: int = 2) -> dict[str, int]:
    import nibabel as nib

    rng = np.random.default_rng(0)
    shape = CAMUS_SHAPE
    for p in range(1, patients + 1):
        name = f"patient{p:04d}"
        folder = root / "database_nifti" / name
        folder.mkdir(parents=True, exist_ok=True)
        for v, view in enumerate(("2CH", "4CH")):
            quality = (p + v) % 3
            # stored rotated, as the archive is: the processor turns each frame back
            frames_ = [np.rot90(fan_image(rng, shape, quality, 3)) for _ in range(frames)]
            labels = [np.rot90(camus_structures(shape)) for _ in range(frames)]
            for suffix, stack in (("", frames_), ("_gt", labels)):
                volume = np.stack(stack, axis=-1).astype(np.uint8)
                nib.save(
                    nib.Nifti1Image(volume, affine=np.eye(4)),
                    folder / f"{name}_{view}_half_sequence{suffix}.nii.gz",
                )
            (folder / f"Info_{view}.cfg").write_text(
                f"ED: 1\nES: {frames}\nNbFrame: {frames}\nSex: F\nAge: {40 + p}\n"
                f"ImageQuality: {('Poor', 'Medium', 'Good')[quality]}\nEF: 55\nFrameRate: 50.0\n"
            )
    groups = _sizes(patients)
    return {split: count * 2 * frames for split, count in groups.items()}


# -- MMOTU (github.com/cv516Buaa/MMOTU_DS2Net): OTU_2d/images/<n>.JPG, annotations/<n>.PNG (RGB
#    class colours) and <n>_binary.PNG (class indices 0/1; a palette PNG here, as mmseg-style
#    label files are), train.txt, val.txt, train_cls.txt and val_cls.txt


def write_mmotu_binary(root: Path, train_per_class: int = 5) -> dict[str, int]:
    rng = np.random.default_rng(0)
    shape = (32, 40)
    otu = root / "OTU_2d"
    number = 1
    for prefix, per_class in (("train", train_per_class), ("val", 1)):
        names, labels = [], []
        for label in range(8):
            for _ in range(per_class):
                stem = str(number)
                image = np.repeat(fan_image(rng, shape, label, 8)[..., None], 3, axis=-1)
                path = otu / "images" / f"{stem}.JPG"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path, format="JPEG", quality=95)
                tumour = _disc(shape, (18, 20), 5 + label % 3)
                colour = np.zeros((*shape, 3), dtype=np.uint8)
                colour[tumour] = MMOTU_COLOURS[label]
                _save(otu / "annotations" / f"{stem}.PNG", colour)
                _save(
                    otu / "annotations" / f"{stem}_binary.PNG",
                    tumour.astype(np.uint8),
                    palette=[0, 0, 0, 128, 0, 0],
                )
                names.append(stem)
                labels.append(label)
                number += 1
        (otu / f"{prefix}.txt").write_text("\n".join(names) + "\n")
        (otu / f"{prefix}_cls.txt").write_text(
            "".join(f"{n}.JPG  {lab}\n" for n, lab in zip(names, labels, strict=True))
        )
    train_val = 8 * train_per_class
    val = int(np.ceil(train_val * 0.2))
    return {"train": train_val - val, "validation": val, "test": 8}


# -- Open Kidney (rsingla.ca/kidneyUS + github.com/rsingla92/kidneyUS): images/<n>_<id>_anon.png,
#    labels/reviewed_labels_1.csv (VGG Image Annotator rows, one per region) and
#    labels/reviewed_masks_1/{capsule,regions}/<image> (0/1 and 0-3)

KIDNEY_VIEWS = ("Longitudinal", "Transverse", "Other")
VIA_COLUMNS = (
    "filename",
    "file_size",
    "file_attributes",
    "region_count",
    "region_id",
    "region_shape_attributes",
    "region_attributes",
)


def _via_rows(name: str, view: str, comment: str, regions: list[str]) -> list[dict]:
    """The label file's rows for one image: one per outlined region, or one empty row."""
    attributes = json.dumps({"Quality": "Fair", "View": view, "Comments": comment})
    shape = {"name": "polygon", "all_points_x": [20, 40, 30], "all_points_y": [20, 20, 35]}
    cells = (
        [("{}", "{}")]
        if not regions
        else [(json.dumps(shape), json.dumps({"Anatomy": r})) for r in regions]
    )
    return [
        dict(zip(VIA_COLUMNS, (name, 1000, attributes, len(regions), k, *c), strict=True))
        for k, c in enumerate(cells)
    ]


def write_open_kidney(root: Path, images: int = 30) -> dict[str, int]:
    rng = np.random.default_rng(0)
    shape = (48, 64)
    rows: list[dict] = []
    names = [f"{k + 1}_IM-{k:04d}-0001_anon.png" for k in range(images)]
    # the archive holds the same file id again under another leading number: not kept
    names.append(f"{images + 1}_IM-0003-0001_anon.png")
    for k, name in enumerate(names):
        outlined = k % 10 != 4  # some images have no kidney outline: an empty mask
        _save(root / "images" / name, np.repeat(fan_image(rng, shape, 0, 1)[..., None], 3, -1))
        capsule = _disc(shape, (30, 32), 10) & outlined
        regions = np.zeros(shape, dtype=np.uint8)
        regions[capsule] = 3
        regions[_disc(shape, (30, 32), 6) & outlined] = 2
        regions[_disc(shape, (30, 32), 3) & outlined] = 1
        masks = root / "labels" / "reviewed_masks_1"
        _save(masks / "capsule" / name, capsule.astype(np.uint8))
        _save(masks / "regions" / name, regions)
        comment = "transplant" if k % 7 == 0 else "n/a"
        anatomy = ["Capsule", "Central Echo Complex", "Medulla", "Cortex"] if outlined else []
        rows += _via_rows(name, KIDNEY_VIEWS[k % 3], comment, anatomy)
    with (root / "labels" / "reviewed_labels_1.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=VIA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return _sizes(images)


# -- PSFHS (Zenodo 10969427): image_mha/<nnnnn>.mha (3 x H x W) and label_mha/<nnnnn>.mha
#    (H x W: 0 background, 1 pubic symphysis, 2 fetal head)


def write_psfhs(root: Path, images: int = 20) -> dict[str, int]:
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    shape = (40, 48)
    (root / "image_mha").mkdir(parents=True, exist_ok=True)
    (root / "label_mha").mkdir(parents=True, exist_ok=True)
    for k in range(images):
        name = f"{k + 1:05d}.mha"
        gray = fan_image(rng, shape, k % 2, 2)
        sitk.WriteImage(sitk.GetImageFromArray(np.stack([gray] * 3)), root / "image_mha" / name)
        label = np.zeros(shape, dtype=np.uint8)
        label[_disc(shape, (26, 28), 9)] = 2
        label[_disc(shape, (12, 14), 4)] = 1
        sitk.WriteImage(sitk.GetImageFromArray(label), root / "label_mha" / name)
    return _sizes(images)


# -- Stanford Thyroid Ultrasound Cine-clip (Stanford AIMI): dataset.hdf5 (image, mask 0/255,
#    annot_id "<patient>_") and metadata.csv, one row per annot_id

THYROID_COLUMNS = (
    "annot_id",
    "sex",
    "age",
    "location",
    "ti-rads_composition",
    "ti-rads_echogenicity",
    "ti-rads_shape",
    "ti-rads_margin",
    "ti-rads_echogenicfoci",
    "ti-rads_level",
    "histopath_diagnosis",
    "size_x",
    "size_y",
    "size_z",
)


def thyroid_patients() -> list[int]:
    """The patients ultrabench keeps (scanned with a convex probe)."""
    import importlib

    return list(importlib.import_module("ultrabench.datasets.stanford_thyroid").PATIENTS)


def write_stanford_thyroid(
    root: Path, patients: list[int] | None = None, frames: int = 2
) -> dict[str, int]:
    """`patients`: those the processor keeps (its whole list by default); two it does not keep
    (1 and 2) are written too."""
    import h5py

    rng = np.random.default_rng(0)
    shape = (24, 24)
    kept = thyroid_patients() if patients is None else patients
    everyone = [1, 2, *kept]
    ids = [f"{p}_" for p in everyone for _ in range(frames)]
    images = np.stack([fan_image(rng, shape, k % 2, 2) for k in range(len(ids))])
    mask = np.where(_disc(shape, (14, 12), 5), 255, 0).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "dataset.hdf5", "w") as data:
        data["image"] = images
        data["mask"] = np.repeat(mask[None], len(ids), axis=0)
        data.create_dataset("annot_id", data=ids, dtype=h5py.string_dtype())
        data["frame_num"] = np.arange(len(ids))
    with (root / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(THYROID_COLUMNS)
        for p in everyone:
            level = 2 + p % 4
            writer.writerow([f"{p}_", "F", 50, "left", 1, 1, 0, 0, 0, level, 0, 1.0, 1.2, 0.8])
    groups = _sizes(len(kept))
    return {split: count * frames for split, count in groups.items()}


# -- prepare a tree and read it back


def prepare_and_read(name: str, raw: Path, out: Path) -> tuple[Prepared, Dataset]:
    """What `ubench prepare NAME RAW OUT` runs (the command itself loads the whole CLI; it is
    tested once, in test_data_prepare_registry), then the folder read through the task's card."""
    from ultrabench_eval.core.registry import TASKS

    card = TASKS.get(name)
    prepared = prepare(card, raw, out)
    return prepared, open_dataset(card, out)


def split_sizes(dataset: Dataset) -> dict[str, int]:
    return {name: len(dataset.splits[name]) for name in SPLITS}


def mask_values(dataset: Dataset) -> set[int]:
    """Every pixel value of every record's label mask (as stored: a palette PNG's indices),
    after checking that each mask exists and has its image's size."""
    seen: set[int] = set()
    for split in dataset.splits.values():
        for record in split.records:
            assert record.mask is not None, f"{record.image} has no label mask"
            with (
                Image.open(split.root / record.mask) as mask,
                Image.open(split.root / record.image) as image,
            ):
                assert mask.size == image.size, f"{record.mask} is not {record.image}'s size"
                seen |= {int(v) for v in np.unique(np.asarray(mask))}
    return seen
