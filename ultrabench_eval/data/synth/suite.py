"""The generated suite: task definitions, and writing each task as an UltraBench-format folder.

A task folder `<folder>/` holds `train.json`, `validation.json` and `test.json` (lists of
records with `patient`, `image`, `scan_mask`, integer `label`, `class` and generation fields),
`images/` and `masks/scan/` (PNG, masks 0/1), and `synth.json`, the manifest that says which
call wrote it. A segmentation task also writes each image's label mask, `masks/lesion/` (PNG,
pixel value = the lesion's class index, 0 = background), named by the records' `lesion_mask`:
the lesion's region evaluated at every pixel centre, so the mask is exact, not traced. The same
arguments give byte-identical folders.

Randomness: every task has its own streams derived from (seed, task name); every patient and
every image its own child stream, so image k does not depend on how many images are written or
on the number of worker processes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.data.synth import bmode
from ultrabench_eval.data.synth.scenes import (
    REGION,
    Scene,
    lesion_scene,
    pixel_points,
    random_patient,
    random_scanner,
    rounded,
    texture_scene,
    view_scene,
)
from ultrabench_eval.data.task_card import SPLITS

log = logging.getLogger(__name__)

SUITE_VERSION = "1"
MANIFEST = "synth.json"
IMAGES_PER_PATIENT = 4
MIN_IMAGES = 3 * IMAGES_PER_PATIENT  # one full patient per split at least
SPLIT_FRACTIONS = {"validation": 0.15, "test": 0.25}  # train takes the rest (about 0.60)
IMAGE_SIZES = (32, 1024)

# stream kinds under a task's seed
_PATIENT, _IMAGE, _SPLIT = 0, 1, 2


@dataclass(frozen=True)
class SynthTaskSpec:
    """One generated task."""

    name: str  # task card name
    folder: str  # dataset folder
    classes: tuple[str, ...]  # label order
    description: str
    organ: str
    scene: Scene = field(repr=False, compare=False)  # builds the medium of one image
    default_images: int = 300
    gain_jitter_db: float = 2.0  # per-image gain spread on top of the patient's
    # segmentation: the label mask's classes, background first; an image's lesion takes the
    # index of its image class here (an image of a class not listed has an empty mask)
    mask_classes: tuple[str, ...] | None = None

    @property
    def is_segmentation(self) -> bool:
        return self.mask_classes is not None

    def __post_init__(self) -> None:
        # image k has class k % C and a patient holds IMAGES_PER_PATIENT consecutive images:
        # with C <= IMAGES_PER_PATIENT every patient, hence every split, has every class
        if not 2 <= len(self.classes) <= IMAGES_PER_PATIENT:
            raise ValueError(f"{self.name}: 2 to {IMAGES_PER_PATIENT} classes, not {self.classes}")


# ---------------------------------------------------------------------------------------------
# Random streams


def _task_key(name: str) -> int:
    # a stable hash (Python's hash() of a str changes between runs)
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def _stream(seed: int, name: str, kind: int, index: int) -> np.random.Generator:
    sequence = np.random.SeedSequence(entropy=[seed, _task_key(name)], spawn_key=(kind, index))
    return np.random.default_rng(sequence)


# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The task list


SYNTH_TASKS: dict[str, SynthTaskSpec] = {
    spec.name: spec
    for spec in (
        SynthTaskSpec(
            name="synth-lesion",
            folder="synth_lesion_v1",
            classes=("none", "cyst", "solid"),
            description=(
                "Generated B-mode images of soft tissue with no focal lesion, a simple cyst "
                "(anechoic, thin bright wall, posterior enhancement) or a solid mass (irregular "
                "hypoechoic, lobulated/spiculated margin, posterior shadow); normal findings "
                "(septa, small vessels, rib shadows, focal hypoechoic areas) appear in every class."
            ),
            organ="soft tissue",
            scene=lesion_scene,
        ),
        SynthTaskSpec(
            name="synth-lesion-seg",
            folder="synth_lesion_seg_v1",
            classes=("none", "cyst", "solid"),
            description=(
                "Segmentation of the synth-lesion images: every pixel is background, cyst or "
                "solid mass; the masks are the lesions' drawn regions, exact at every pixel. A "
                "third of the images have no lesion (an empty mask)."
            ),
            organ="soft tissue",
            scene=lesion_scene,
            mask_classes=("background", "cyst", "solid"),
        ),
        SynthTaskSpec(
            name="synth-texture",
            folder="synth_texture_v1",
            classes=("fine", "sparse", "coarse"),
            description=(
                "Generated homogeneous tissue whose class is set by the scatterer statistics "
                "alone: fine (many scatterers per resolution cell, Rayleigh speckle), sparse (few "
                "per cell, non-Rayleigh) or coarse (clustered scatterers); gain, attenuation, "
                "dynamic range and probe are randomised so brightness does not give it away."
            ),
            organ="soft tissue",
            scene=texture_scene,
            gain_jitter_db=6.0,
        ),
        SynthTaskSpec(
            name="synth-view",
            folder="synth_view_v1",
            classes=("bladder", "vessel", "muscle", "liver"),
            description=(
                "Generated anatomical views: a bladder (large anechoic rounded organ), vessels "
                "(long or short axis), muscle (oblique bright fibre septa and fascia bands) or "
                "liver (homogeneous parenchyma with small vessels and the diaphragm)."
            ),
            organ="mixed",
            scene=view_scene,
        ),
    )
}


def get_task(name: str) -> SynthTaskSpec:
    """The spec of a generated task; UserError naming the known ones otherwise."""
    try:
        return SYNTH_TASKS[name]
    except KeyError:
        known = ", ".join(SYNTH_TASKS)
        raise UserError(f"unknown generated task '{name}' (known: {known})") from None


# ---------------------------------------------------------------------------------------------
# Images


def generate_image(
    name: str, index: int, *, seed: int = 0, image_size: int = 128
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Image `index` of a task: (image uint8 [S, S], scan mask bool [S, S], record without the
    file paths). The class is `index` modulo the number of classes, so classes are balanced and
    every patient (IMAGES_PER_PATIENT consecutive images) shows several of them."""
    spec = get_task(name)
    seed, index = _whole(seed, "seed", 0), _whole(index, "index", 0)
    image_size = _whole(image_size, "image_size", *IMAGE_SIZES)
    patient = random_patient(
        _stream(seed, name, _PATIENT, index // IMAGES_PER_PATIENT), index // IMAGES_PER_PATIENT
    )
    label = index % len(spec.classes)
    cls = spec.classes[label]
    rng = _stream(seed, name, _IMAGE, index)
    probe = bmode.random_probe(rng)
    scanner = random_scanner(rng, patient, spec.gain_jitter_db)
    grid = bmode.prescan_grid(probe, image_size)
    medium, fields = spec.scene(cls, patient, rng, grid)
    region = fields.pop(REGION, None)
    image, mask = bmode.render(medium, grid, scanner, rng, image_size)
    record = {"patient": patient.id, "label": label, "class": cls, "probe": probe.kind}
    record["gain_db"] = rounded(scanner.gain_db)
    record.update(fields)
    if spec.mask_classes is not None:
        record[LABEL_MASK] = label_mask(spec, cls, region, mask, image_size)
    return image, mask, record


LABEL_MASK = "lesion_mask"


def label_mask(
    spec: SynthTaskSpec, cls: str, region: Callable | None, scan: np.ndarray, image_size: int
) -> np.ndarray:
    """The segmentation mask of one image: its lesion's class index inside the lesion's region
    and the scan (the image is black outside the scan), 0 elsewhere. uint8 [S, S]."""
    out = np.zeros((image_size, image_size), dtype=np.uint8)
    if region is not None and spec.mask_classes is not None and cls in spec.mask_classes:
        out[region(pixel_points(image_size)) & scan] = spec.mask_classes.index(cls)
    return out


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _encoded(index: int, *, name: str, seed: int, image_size: int) -> tuple[dict, bytes, bytes]:
    """Image `index` as a record with file paths and its PNG bytes (runs in worker processes)."""
    image, mask, fields = generate_image(name, index, seed=seed, image_size=image_size)
    stem = f"{fields['patient']}_{index:05d}.png"
    lesion = fields.pop(LABEL_MASK, None)
    record = {
        "patient": fields.pop("patient"),
        "image": f"images/{stem}",
        "scan_mask": f"masks/scan/{stem}",
        "label": fields.pop("label"),
        "class": fields.pop("class"),
        **fields,
    }
    pngs = [_png(image), _png(mask.astype(np.uint8))]
    if lesion is not None:
        record[LABEL_MASK] = f"masks/lesion/{stem}"
        pngs.append(_png(lesion))
    return record, *pngs


def _generate(
    name: str, num_images: int, seed: int, image_size: int, workers: int
) -> Iterator[tuple[Any, ...]]:
    work = functools.partial(_encoded, name=name, seed=seed, image_size=image_size)
    indices = range(num_images)
    if workers <= 1:
        yield from map(work, indices)
        return
    chunk = max(1, num_images // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # map keeps the order, so the output does not depend on the number of workers
        yield from pool.map(work, indices, chunksize=chunk)


# ---------------------------------------------------------------------------------------------
# Splits


def _split_counts(num_patients: int) -> dict[str, int]:
    counts = {s: max(1, math.floor(f * num_patients + 0.5)) for s, f in SPLIT_FRACTIONS.items()}
    return {"train": num_patients - sum(counts.values()), **counts}


def _patient_splits(name: str, seed: int, num_images: int) -> dict[int, str]:
    """Patient index -> split, by a seeded shuffle; a last, partial patient stays in train so
    every class is in every split."""
    num_patients = math.ceil(num_images / IMAGES_PER_PATIENT)
    partial = num_images % IMAGES_PER_PATIENT != 0
    counts = _split_counts(num_patients)
    full = num_patients - int(partial)
    order = _stream(seed, name, _SPLIT, 0).permutation(full).tolist()
    names = ["train"] * (counts["train"] - int(partial))
    names += ["validation"] * counts["validation"] + ["test"] * counts["test"]
    splits = {int(p): s for p, s in zip(order, names, strict=True)}
    if partial:
        splits[num_patients - 1] = "train"
    return splits


def split_sizes(name: str, num_images: int | None = None, seed: int = 0) -> dict[str, int]:
    """Images per split that write_task produces (without generating them)."""
    n = _num_images(get_task(name), num_images)
    splits = _patient_splits(name, _whole(seed, "seed", 0), n)
    sizes = dict.fromkeys(SPLITS, 0)
    for index in range(n):
        sizes[splits[index // IMAGES_PER_PATIENT]] += 1
    return sizes


# ---------------------------------------------------------------------------------------------
# Writing


def _whole(value: Any, what: str, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high]; UserError otherwise."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if not ok or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise UserError(f"{what} must be an integer {bounds}, not {value!r}")
    return int(value)


def _num_images(spec: SynthTaskSpec, num_images: int | None) -> int:
    value = spec.default_images if num_images is None else num_images
    return _whole(value, "num_images", MIN_IMAGES)


def _manifest(spec: SynthTaskSpec, seed: int, num_images: int, image_size: int) -> dict:
    return {
        "generator": "ultrabench_eval.data.synth",
        "suite_version": SUITE_VERSION,
        "task": spec.name,
        "folder": spec.folder,
        "seed": int(seed),
        "num_images": int(num_images),
        "image_size": int(image_size),
        "classes": list(spec.classes),
        "split_sizes": split_sizes(spec.name, num_images, seed),
        **({"mask_classes": list(spec.mask_classes)} if spec.mask_classes else {}),
    }


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of a generated folder, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _dump(path: Path, obj: Any) -> None:
    # bytes, not text: no newline translation, so the files are the same on every platform
    path.write_bytes((json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def _build(folder: Path, spec: SynthTaskSpec, manifest: dict, workers: int) -> None:
    """Write the whole dataset into `folder` (a fresh temporary folder)."""
    (folder / "images").mkdir()
    (folder / "masks" / "scan").mkdir(parents=True)
    if spec.is_segmentation:
        (folder / "masks" / "lesion").mkdir()
    seed, n, size = manifest["seed"], manifest["num_images"], manifest["image_size"]
    splits = _patient_splits(spec.name, seed, n)
    records: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for index, (record, image_png, mask_png, *lesion_png) in enumerate(
        _generate(spec.name, n, seed, size, workers)
    ):
        (folder / record["image"]).write_bytes(image_png)
        (folder / record["scan_mask"]).write_bytes(mask_png)
        if lesion_png:
            (folder / record[LABEL_MASK]).write_bytes(lesion_png[0])
        records[splits[index // IMAGES_PER_PATIENT]].append(record)
    for split, items in records.items():
        _dump(folder / f"{split}.json", items)
    # last: a folder with a manifest is complete (it is renamed into place whole anyway)
    _dump(folder / MANIFEST, manifest)


def _sibling(target: Path, tag: str) -> Path:
    # not tempfile.mkdtemp: it creates mode 0700, which the renamed dataset folder would keep
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{tag}")


def _install(built: Path, target: Path, manifest: dict) -> None:
    """Move the built folder to `target` in one rename; an existing folder is renamed aside
    first and removed after, so readers never see a half-written dataset."""
    old = None
    if target.exists() or target.is_symlink():
        if read_manifest(target) == manifest:
            return  # another writer finished the same dataset first
        old = _sibling(target, "old")
        os.rename(target, old)
    try:
        os.rename(built, target)
    except OSError:
        if old is not None and not (target.exists() or target.is_symlink()):
            os.rename(old, target)  # put the previous dataset back
            old = None
        if read_manifest(target) != manifest:  # not lost to a writer of the same dataset
            raise
    finally:
        if old is not None:
            _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_task(
    name: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_images: int | None = None,
    image_size: int = 128,
    workers: int = 1,
) -> Path:
    """Generate task `name` into `out_dir/<folder>/` and return that folder.

    Does nothing when the folder already holds the same manifest (suite version, task, seed,
    number of images, size); otherwise builds beside it and swaps it in atomically.
    """
    spec = get_task(name)
    n = _num_images(spec, num_images)
    seed = _whole(seed, "seed", 0)
    image_size = _whole(image_size, "image_size", *IMAGE_SIZES)
    workers = _whole(workers, "workers", 1)
    out_dir = Path(out_dir)
    target = out_dir / spec.folder
    manifest = _manifest(spec, seed, n, image_size)
    if target.is_dir() and read_manifest(target) == manifest:
        log.info("%s is up to date (%s), not rewritten", target, MANIFEST)
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    built = _sibling(target, "tmp")
    built.mkdir()
    try:
        log.info("generating %s: %d images of %d px (seed %d)", target, n, image_size, seed)
        _build(built, spec, manifest, workers)
        _install(built, target, manifest)
    finally:
        if built.exists():
            _remove(built)
    return target


def write_suite(
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_images: int | None = None,
    image_size: int = 128,
    tasks: Iterable[str] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Generate several tasks (all by default, in SYNTH_TASKS order); returns their folders."""
    names = list(SYNTH_TASKS) if tasks is None else list(tasks)
    for name in names:
        get_task(name)  # fail before writing anything
    return [
        write_task(
            name, out_dir, seed=seed, num_images=num_images, image_size=image_size, workers=workers
        )
        for name in names
    ]


def default_synth_tasks() -> list[str]:
    return [name for name in TASKS.names() if TASKS.get(name).generator == "synth"]


def generate_missing_synth(
    tasks: list[str], data_root: Path, log: Callable[[str], None] = print
) -> None:
    """Write generated tasks whose folder is missing, so the default needs no preparation."""
    missing = []
    for name in tasks:
        card = TASKS.get(name)
        if card.generator == "synth" and not (Path(data_root) / card.dataset).exists():
            missing.append(name)
    if not missing:
        return
    for name in missing:
        log(f"generating {name} into {data_root}")
        write_task(name, data_root, seed=0)
