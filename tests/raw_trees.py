"""Small fake raw downloads, laid out the way each dataset's real archive unpacks.

Every builder writes a tree whose file names, label files (CSV, TXT, JSON, XML, MAT, NIfTI,
cfg) and folder nesting follow the real download, with tiny synthetic fan-shaped images, and
returns the sizes the preparer must produce from it (train, validation, test), which the tests
check against. The layouts follow the ultrabench 1.0.1 processors that read them and the
datasets' own documentation (see each builder).
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ultrabench_eval.data.task_card import TaskCard


def fan_image(
    rng: np.random.Generator, shape: tuple[int, int], level: int, levels: int
) -> np.ndarray:
    """A convex-probe B-mode look-alike: speckle inside a fan on black, with a disc whose
    brightness encodes the class, so a pixel probe has something to learn."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    apex_y = -h * 0.25
    radius = np.hypot(yy - apex_y, xx - w / 2)
    angle = np.abs(np.arctan2(xx - w / 2, yy - apex_y))
    fan = (radius > h * 0.3) & (radius < h * 1.2) & (angle < 0.6)
    image = rng.integers(40, 110, size=shape).astype(np.uint8)
    disc = np.hypot(yy - h * 0.6, xx - w / 2) < min(h, w) * 0.12
    image[disc] = np.uint8(120 + 120 * level / max(levels - 1, 1))
    image[~fan] = 0
    return image


def fan_polygon(shape: tuple[int, int]) -> list[list[float]]:
    """The fan's outline as [x, y] points (the AUL JSON polygon format)."""
    h, w = shape
    apex_y = -h * 0.25
    points = []
    for a in np.linspace(-0.6, 0.6, 12):
        points.append([w / 2 + h * 1.2 * np.sin(a), apex_y + h * 1.2 * np.cos(a)])
    for a in np.linspace(0.6, -0.6, 12):
        points.append([w / 2 + h * 0.3 * np.sin(a), apex_y + h * 0.3 * np.cos(a)])
    return [[float(np.clip(x, 0, w - 1)), float(np.clip(y, 0, h - 1))] for x, y in points]


def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def override_card(name: str, split_sizes: dict[str, int], folder: Path, monkeypatch) -> TaskCard:
    """The shipped card of `name` with the fake tree's split sizes, put first in line through
    UBENCH_TASKS for this test only (the registry is restored afterwards)."""
    from ultrabench_eval.core.registry import TASKS

    card = TASKS.get(name)
    data = yaml.safe_load(Path(card.path).read_text())
    data["split_sizes"] = split_sizes
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("UBENCH_TASKS", str(folder))
    monkeypatch.setattr(TASKS, "_entries", {})
    monkeypatch.setattr(TASKS, "_populated", False)
    return replace(card, split_sizes=split_sizes)


# -- AUL (Zenodo 7272660): <class>/image/<n>.jpg, <class>/segmentation/{outline,liver,mass}/<n>.json


def write_aul(root: Path, per_class: int = 10, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    shape = (120, 160)
    polygon = fan_polygon(shape)
    number = 1
    for level, folder in enumerate(("Normal", "Benign", "Malignant")):
        for _ in range(per_class):
            stem = str(number)
            _save(root / folder / "image" / f"{stem}.jpg", _rgb(fan_image(rng, shape, level, 3)))
            seg = root / folder / "segmentation"
            for part in ("outline", "liver") + (("mass",) if level else ()):
                # the real archive lacks one liver outline (image 374): mimic that once
                if part == "liver" and number == 7:
                    continue
                (seg / part).mkdir(parents=True, exist_ok=True)
                (seg / part / f"{stem}.json").write_text(json.dumps(polygon))
            number += 1
    total = 3 * per_class
    test = -(-total * 2 // 10)
    val = -(-(total - test) // 10)
    return {"train": total - test - val, "validation": val, "test": test}


# -- Butterfly (MITGrandHack2018 release): training1|training2|test/<patient>/<class>/<nnn>.png

BUTTERFLY_CLASSES = (
    "carotid",
    "2ch",
    "lungs",
    "ivc",
    "4ch",
    "bladder",
    "thyroid",
    "plax",
    "morisons_pouch",
)


def write_butterfly(root: Path, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    shape = (64, 56)
    layout = {"training1": (1, 2, 3), "training2": (4, 5), "test": (26,)}
    for subset, patients in layout.items():
        for patient in patients:
            for level, name in enumerate(BUTTERFLY_CLASSES):
                image = fan_image(rng, shape, level, len(BUTTERFLY_CLASSES))
                _save(root / subset / str(patient) / name / f"{level + 1:03d}.png", image)
    # five training patients: one (9 images) goes to validation, patient-grouped
    return {"train": 36, "validation": 9, "test": 9}


# -- CAMUS (CREATIS): database_nifti/patientNNNN/patientNNNN_{2CH,4CH}_half_sequence[_gt].nii.gz
#    and Info_{2CH,4CH}.cfg ("Key: value" lines)

CAMUS_QUALITY = ("Poor", "Medium", "Good")


def write_camus(root: Path, patients: int = 10, frames: int = 2, seed: int = 0) -> dict[str, int]:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    shape = (64, 56)
    for p in range(1, patients + 1):
        name = f"patient{p:04d}"
        folder = root / "database_nifti" / name
        folder.mkdir(parents=True, exist_ok=True)
        for v, view in enumerate(("2CH", "4CH")):
            quality = (p + v) % 3
            stack = np.stack(
                [np.rot90(fan_image(rng, shape, quality, 3)) for _ in range(frames)], axis=-1
            )
            gt = (stack > 0).astype(np.uint8)
            for suffix, volume in (("", stack), ("_gt", gt)):
                image = nib.Nifti1Image(volume.astype(np.uint8), affine=np.eye(4))
                nib.save(image, folder / f"{name}_{view}_half_sequence{suffix}.nii.gz")
            (folder / f"Info_{view}.cfg").write_text(
                f"ED: 1\nES: {frames}\nNbFrame: {frames}\nSex: F\nAge: {40 + p}\n"
                f"ImageQuality: {CAMUS_QUALITY[quality]}\nEF: 55\nFrameRate: 50.0\n"
            )
    per_patient = 2 * frames
    test = -(-patients * 2 // 10)
    val = -(-(patients - test) // 10)
    train = patients - test - val
    return {
        "train": train * per_patient,
        "validation": val * per_patient,
        "test": test * per_patient,
    }


# -- Fatty liver (Zenodo 1009146): dataset_liver_bmodes_steatosis_assessment_IJCARS.mat, a 1 x N
#    struct array `data` with fields id, class, fat, images (frames x H x W uint8)

FATTY_LIVER_FILE = "dataset_liver_bmodes_steatosis_assessment_IJCARS.mat"


def write_fatty_liver(
    root: Path, patients: int = 20, frames: int = 2, seed: int = 0
) -> dict[str, int]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    shape = (96, 128)
    dtype = [("id", "O"), ("class", "O"), ("fat", "O"), ("images", "O")]
    data = np.zeros((1, patients), dtype=dtype)
    for i in range(patients):
        label = i % 2
        data[0, i]["id"] = np.array([[i + 1]], dtype=np.uint8)
        data[0, i]["class"] = np.array([[label]], dtype=np.uint8)
        data[0, i]["fat"] = np.array([[40 if label else 2]], dtype=np.uint8)
        data[0, i]["images"] = np.stack([fan_image(rng, shape, label, 2) for _ in range(frames)])
    root.mkdir(parents=True, exist_ok=True)
    savemat(root / FATTY_LIVER_FILE, {"data": data})
    test = -(-patients * 2 // 10)
    val = -(-(patients - test) // 10)
    train = patients - test - val
    return {"train": train * frames, "validation": val * frames, "test": test * frames}


# -- GBCU (gbc-iitd.github.io/data/gbcu): imgs/im*.jpg, train.txt and test.txt ("name,label" CSV),
#    bbox_annot.json ({name: {"dim": [w, h], "bbs": [[label, [x0, y0, x1, y1]], ...]}})


def write_gbcu(root: Path, train_per_class: int = 10, test_per_class: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (96, 128)
    annotations = {}
    lines: dict[str, list[str]] = {"train": [], "test": []}
    number = 1
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label in range(3):
            for _ in range(per_class):
                name = f"im{number:05d}.jpg"
                image = _rgb(fan_image(rng, shape, label, 3))
                _save(root / "imgs" / name, image, quality=95)
                box = [40, 30, 90, 70]
                bbs = [["nml" if label == 0 else "abn", box]]
                if label == 2:
                    bbs.insert(0, ["malg", [50, 40, 80, 60]])
                annotations[name] = {"dim": [shape[1], shape[0]], "bbs": bbs}
                lines[split].append(f"{name},{label}")
                number += 1
    for split, rows in lines.items():
        (root / f"{split}.txt").write_text("\n".join(rows) + "\n")
    (root / "bbox_annot.json").write_text(json.dumps(annotations))
    train_val = 3 * train_per_class
    val = -(-train_val // 10)
    return {"train": train_val - val, "validation": val, "test": 3 * test_per_class}


# -- MMOTU (github.com/cv516Buaa/MMOTU_DS2Net): OTU_2d/images/<n>.JPG,
#    OTU_2d/annotations/<n>.PNG (RGB class colours) and <n>_binary.PNG,
#    OTU_2d/{train,val}.txt (names) and {train,val}_cls.txt ("<n>.JPG  <label>")

MMOTU_COLOURS = (
    (64, 0, 0),
    (0, 64, 0),
    (0, 0, 64),
    (64, 0, 64),
    (64, 64, 0),
    (64, 64, 64),
    (0, 128, 0),
    (0, 0, 128),
)


def write_mmotu(root: Path, train_per_class: int = 5, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    shape = (120, 160)
    otu = root / "OTU_2d"
    number = 1
    for prefix, per_class in (("train", train_per_class), ("val", 1)):
        names, labels = [], []
        for label in range(8):
            for _ in range(per_class):
                stem = str(number)
                image = fan_image(rng, shape, label, 8)
                _save(otu / "images" / f"{stem}.JPG", _rgb(image), format="JPEG", quality=95)
                tumour = np.zeros(shape, dtype=bool)
                tumour[50:80, 60:100] = True
                colour = np.zeros((*shape, 3), dtype=np.uint8)
                colour[tumour] = MMOTU_COLOURS[label]
                _save(otu / "annotations" / f"{stem}.PNG", colour, format="PNG")
                binary = (tumour * 255).astype(np.uint8)
                _save(otu / "annotations" / f"{stem}_binary.PNG", binary, format="PNG")
                names.append(stem)
                labels.append(label)
                number += 1
        (otu / f"{prefix}.txt").write_text("\n".join(names) + "\n")
        (otu / f"{prefix}_cls.txt").write_text(
            "".join(f"{n}.JPG  {lab}\n" for n, lab in zip(names, labels, strict=True))
        )
    train_val = 8 * train_per_class
    val = -(-train_val * 2 // 10)
    return {"train": train_val - val, "validation": val, "test": 8}


# -- POCUS (github.com/jannisborn/covid19_ultrasound, the repository root):
#    data/pocus_images/convex/{Cov,Pneu,Reg}_*.{png,jpg} and data/pocus_videos/convex/*.{mp4,...}

POCUS_PREFIXES = ("Reg", "Pneu", "Cov")


def write_pocus(root: Path, seed: int = 0) -> dict[str, int]:
    import imageio.v2 as imageio

    rng = np.random.default_rng(seed)
    shape = (96, 128)
    images = root / "data" / "pocus_images" / "convex"
    videos = root / "data" / "pocus_videos" / "convex"
    videos.mkdir(parents=True, exist_ok=True)
    for level, prefix in enumerate(POCUS_PREFIXES):
        for k in range(2):
            suffix = ".png" if k % 2 == 0 else ".jpg"
            _save(images / f"{prefix}_fig{k}{suffix}", _rgb(fan_image(rng, shape, level, 3)))
        for k in range(2):
            frames = [_rgb(fan_image(rng, shape, level, 3)) for _ in range(8)]
            # 6 fps: the processor keeps every 2nd frame from the 2nd (3 Hz), so 4 per video
            with imageio.get_writer(
                videos / f"{prefix}_clip{k}.mp4", fps=6, codec="libx264", quality=9
            ) as writer:
                for frame in frames:
                    writer.append_data(frame)
        # animated GIFs go through OpenCV in the processor (10 fps: every 3rd frame, 3 kept)
        gif = [Image.fromarray(fan_image(rng, shape, level, 3)) for _ in range(8)]
        gif[0].save(
            videos / f"{prefix}-Atlas.gif", save_all=True, append_images=gif[1:], duration=100
        )
    # 15 sources (6 images, 6 videos of 4 frames, 3 GIFs of 3 frames), split by source: test
    # Reg_clip0, Pneu_fig1, Cov-Atlas; validation Reg_fig0, Reg_clip1
    return {"train": 26, "validation": 5, "test": 8}


# -- BUS-BRA (Zenodo 8231412): BUSBRA/Images/bus_NNNN-{l,r,s}.png, BUSBRA/Masks/mask_NNNN-*.png,
#    BUSBRA/bus_data.csv (ID, Case, Histology, Pathology, BIRADS, Device, Width, Height, Side,
#    BBOX) and the k-fold CSVs


def write_busbra(root: Path, cases: int = 20, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    shape = (80, 96)
    folder = root / "BUSBRA"
    rows = []
    for case in range(1, cases + 1):
        malignant = case % 3 == 0
        sides = ("l", "r") if case % 4 == 1 else ("s",)
        for side in sides:
            ident = f"bus_{case:04d}-{side}"
            image = fan_image(rng, shape, int(malignant), 2)
            image[image == 0] = 15  # BUS-BRA crops close to the scan: no black border
            _save(folder / "Images" / f"{ident}.png", image)
            lesion = np.zeros(shape, dtype=np.uint8)
            lesion[30:50, 35:60] = 255
            _save(folder / "Masks" / f"mask_{case:04d}-{side}.png", lesion)
            rows.append(
                {
                    "ID": ident,
                    "Case": case,
                    "Histology": "invasive ductal carcinoma" if malignant else "fibroadenoma",
                    "Pathology": "malignant" if malignant else "benign",
                    "BIRADS": 5 if malignant else 3,
                    "Device": "GE Logiq 7 @10-14MHz",
                    "Width": shape[1],
                    "Height": shape[0],
                    "Side": {"l": "left", "r": "right", "s": "single"}[side],
                    "BBOX": "[35,30,25,20]",
                }
            )
    with (folder / "bus_data.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "5-fold-cv.csv").write_text("ID,kFold\n" + "".join(f"{r['ID']},1\n" for r in rows))
    test = -(-cases * 2 // 10)
    val = -(-(cases - test) // 10)
    return {"train": cases - test - val, "validation": val, "test": test}


# -- TN5000 (figshare, "TN5000_forReview"): Annotations/<id>.xml (Pascal VOC, object name "0"
#    benign / "1" malignant), JPEGImages/<id>.jpg, ImageSets/Main/{train,val,test,trainval}.txt

TN5000_SPLITS = {"train": 12, "val": 4, "test": 6}


def tn5000_xml(stem: str, shape: tuple[int, int], labels: list[str]) -> str:
    objects = "".join(
        f"<object><name>{label}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{30 + 5 * k}</xmin><ymin>30</ymin>"
        f"<xmax>{70 + 5 * k}</xmax><ymax>60</ymax></bndbox></object>"
        for k, label in enumerate(labels)
    )
    return (
        f"<annotation><folder>JPEGImages</folder><filename>{stem}.jpg</filename>"
        f"<size><width>{shape[1]}</width><height>{shape[0]}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{objects}</annotation>"
    )


def write_tn5000(root: Path, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    shape = (80, 112)
    base = root / "TN5000_forReview" / "TN5000_forReview"
    (base / "Annotations").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    number = 1
    for split, count in TN5000_SPLITS.items():
        ids = []
        for i in range(count):
            stem = f"{number:06d}"
            label = "1" if i % 3 != 0 else "0"
            labels = [label, "1"] if i == 3 else [label]  # a benign and a malignant nodule
            image = _rgb(fan_image(rng, shape, int(label), 2))
            _save(base / "JPEGImages" / f"{stem}.jpg", image, quality=95)
            (base / "Annotations" / f"{stem}.xml").write_text(tn5000_xml(stem, shape, labels))
            ids.append(stem)
            number += 1
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    trainval = (base / "ImageSets/Main/train.txt").read_text()
    trainval += (base / "ImageSets/Main/val.txt").read_text()
    (base / "ImageSets" / "Main" / "trainval.txt").write_text(trainval)
    return {
        "train": TN5000_SPLITS["train"],
        "validation": TN5000_SPLITS["val"],
        "test": TN5000_SPLITS["test"],
    }


# -- the whole path a user runs: prepare, check, bench


def prepare_check_bench(name: str, raw: Path, sizes: dict[str, int], tmp: Path, monkeypatch):
    """`ubench prepare` the fake raw tree, `ubench tasks check` it against the shipped card with
    the fake tree's sizes, and `ubench bench` a pixel probe on it; returns the three outputs
    (stdout) after asserting each command succeeded."""
    import contextlib
    import io

    from ultrabench_eval.cli.parser import main

    def run(*argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        assert code == 0, f"ubench {' '.join(argv)} exited {code}: {err.getvalue()}{out.getvalue()}"
        return out.getvalue()

    data = tmp / "data"
    prepared = run("prepare", name, str(raw), str(data))
    override_card(name, sizes, tmp / "cards", monkeypatch)
    checked = run("tasks", "check", name, str(data))
    bench = run(
        "bench",
        *("--model", "pixels", "--probe", "linear", "--fractions", "100", "--seeds", "1"),
        *("--tasks", name, "--data", str(data), "--results", str(tmp / "results")),
        "--no-progress",
    )
    return prepared, checked, bench
