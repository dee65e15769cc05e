"""The generated suite: format, determinism, idempotent atomic writes, task cards."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.synth import (
    MANIFEST,
    SUITE_VERSION,
    SYNTH_TASKS,
    generate_image,
    read_manifest,
    split_sizes,
    write_suite,
    write_task,
)
from ultrabench_eval.data.task_card import SPLITS, read_card

REPO = Path(__file__).resolve().parent.parent
SMALL = {"num_images": 12, "image_size": 48}


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_suite(out, **SMALL)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _split(folder: Path, split: str) -> list[dict]:
    return json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))


def _card(name: str):
    return read_card(REPO / "tasks" / f"{name}.yaml")


def test_same_seed_gives_byte_identical_folders(suite_dir, tmp_path):
    write_suite(tmp_path, **SMALL)
    for spec in SYNTH_TASKS.values():
        first, second = _files(suite_dir / spec.folder), _files(tmp_path / spec.folder)
        assert first.keys() == second.keys()
        assert all(first[k] == second[k] for k in first), spec.name


def test_different_seed_gives_different_images(suite_dir, tmp_path):
    folder = write_task("synth-lesion", tmp_path, seed=1, **SMALL)
    base = suite_dir / "synth_lesion_v1"
    images = sorted(p.name for p in (base / "images").iterdir())
    assert images == sorted(p.name for p in (folder / "images").iterdir())
    assert all(
        (base / "images" / n).read_bytes() != (folder / "images" / n).read_bytes() for n in images
    )


def test_workers_do_not_change_the_output(suite_dir, tmp_path):
    folder = write_task("synth-view", tmp_path, workers=2, **SMALL)
    assert _files(folder) == _files(suite_dir / "synth_view_v1")


def test_image_k_does_not_depend_on_the_number_of_images(suite_dir, tmp_path):
    folder = write_task("synth-texture", tmp_path, num_images=17, image_size=48)
    base = suite_dir / "synth_texture_v1"
    for path in (base / "images").iterdir():
        assert (folder / "images" / path.name).read_bytes() == path.read_bytes()


def test_streams_do_not_use_python_hash(tmp_path):
    # hash() of a str changes with PYTHONHASHSEED; the images must not
    code = (
        "import hashlib; from ultrabench_eval.data.synth import generate_image; "
        "print(hashlib.sha256(generate_image('synth-lesion', 3, image_size=32)[0]).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    here = hashlib.sha256(generate_image("synth-lesion", 3, image_size=32)[0]).hexdigest()
    assert out.stdout.strip() == here


@pytest.mark.parametrize("name", list(SYNTH_TASKS))
def test_folder_format(suite_dir, name):
    spec = SYNTH_TASKS[name]
    folder = suite_dir / spec.folder
    patients: dict[str, set[str]] = {}
    for split in SPLITS:
        records = _split(folder, split)
        assert isinstance(records, list) and records
        labels = set()
        for record in records:
            assert re.fullmatch(r"p\d{4}", record["patient"])
            assert re.fullmatch(r"images/p\d{4}_\d{5}\.png", record["image"])
            assert record["scan_mask"] == record["image"].replace("images/", "masks/scan/", 1)
            assert isinstance(record["label"], int) and 0 <= record["label"] < len(spec.classes)
            assert record["class"] == spec.classes[record["label"]]
            assert record["probe"] in ("convex", "linear")
            image = np.asarray(Image.open(folder / record["image"]))
            mask = np.asarray(Image.open(folder / record["scan_mask"]))
            assert image.dtype == np.uint8 and image.shape == (48, 48)
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            assert mask.sum() > 0.3 * mask.size
            assert np.all(image[mask == 0] == 0)
            labels.add(record["label"])
            patients.setdefault(split, set()).add(record["patient"])
        assert labels == set(range(len(spec.classes))), f"{split} lacks a class"
    assert not patients["train"] & patients["validation"]
    assert not patients["train"] & patients["test"]
    assert not patients["validation"] & patients["test"]
    manifest = read_manifest(folder)
    assert manifest["suite_version"] == SUITE_VERSION and manifest["task"] == name
    assert manifest["num_images"] == 12 and manifest["image_size"] == 48 and manifest["seed"] == 0
    assert manifest["split_sizes"] == {s: len(_split(folder, s)) for s in SPLITS}


@pytest.mark.parametrize("name", list(SYNTH_TASKS))
def test_folder_opens_as_its_task(suite_dir, name):
    dataset = open_dataset(_card(name), suite_dir)
    assert sum(len(split) for split in dataset.splits.values()) == 12


def test_cyst_images_are_dark_inside_the_lesion():
    darker = []
    for index in range(1, 40, 3):  # label 1: cyst
        image, mask, record = generate_image("synth-lesion", index, image_size=96)
        assert record["class"] == "cyst"
        size = image.shape[0]
        yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
        dist = np.hypot(xx - record["lesion_x"], yy - record["lesion_y"]) / record["lesion_radius"]
        inside = image[(dist < 0.3) & mask]
        ring = image[(dist > 1.5) & (dist < 2.5) & mask]
        darker.append(inside.mean() < 0.5 * ring.mean())
    assert all(darker)


def test_write_task_is_idempotent_and_replaces_other_versions(tmp_path):
    folder = write_task("synth-lesion", tmp_path, **SMALL)
    manifest, image = folder / MANIFEST, next((folder / "images").iterdir())
    before = (folder.stat().st_ino, manifest.stat().st_mtime_ns, image.stat().st_mtime_ns)
    assert write_task("synth-lesion", tmp_path, **SMALL) == folder
    after = (folder.stat().st_ino, manifest.stat().st_mtime_ns, image.stat().st_mtime_ns)
    assert before == after  # not rewritten

    write_task("synth-lesion", tmp_path, seed=3, **SMALL)
    assert read_manifest(folder)["seed"] == 3
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary left behind


def test_write_task_replaces_a_folder_without_manifest(tmp_path):
    stale = tmp_path / "synth_texture_v1"
    (stale / "images").mkdir(parents=True)
    (stale / "train.json").write_text("[]")
    folder = write_task("synth-texture", tmp_path, **SMALL)
    assert folder == stale and read_manifest(folder)["task"] == "synth-texture"
    assert len(_split(folder, "train")) > 0


def test_unknown_task_and_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="synth-lesion"):
        write_task("synth-nope", tmp_path)
    with pytest.raises(UserError, match="synth-view"):
        write_suite(tmp_path, tasks=["synth-lesion", "synth-nope"])
    with pytest.raises(UserError, match="num_images"):
        write_task("synth-lesion", tmp_path, num_images=5)
    with pytest.raises(UserError, match="image_size"):
        write_task("synth-lesion", tmp_path, image_size=8)
    with pytest.raises(UserError, match="seed"):
        write_task("synth-lesion", tmp_path, seed=-1)
    assert list(tmp_path.iterdir()) == []


def test_cards_describe_the_generated_tasks(tmp_path):
    cards = {c.name: c for c in map(read_card, sorted((REPO / "tasks").glob("synth-*.yaml")))}
    assert set(cards) == set(SYNTH_TASKS)
    for name, spec in SYNTH_TASKS.items():
        card = cards[name]
        assert card.dataset == spec.folder
        assert card.classes == (spec.mask_classes or spec.classes)
        assert card.generator == "synth" and card.license == "MIT"
        assert (card.label_field, card.group_field) == ("label", "patient")
        assert card.score_metric == ("dice" if spec.is_segmentation else "macro_f1")
        assert card.mask_field == ("lesion_mask" if spec.is_segmentation else None)
        assert "ubench synth" in card.source
        # the card's split sizes are what write_task produces with the defaults (the image
        # size does not change the counts; small images keep the test fast)
        folder = write_task(name, tmp_path, image_size=32)
        produced = {split: len(_split(folder, split)) for split in SPLITS}
        assert card.split_sizes == produced == split_sizes(name)
