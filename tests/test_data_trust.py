"""Data the harness can trust: paths inside the task folder, no overlap between splits, 16-bit
PNGs by their bit depth, image stores checked on open, and the environment (disk, cache,
results)."""

import dataclasses
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.writable import check_writable_folder
from ultrabench_eval.data import image_store, overlap
from ultrabench_eval.data.dataset import DatasetError, OverlapError, open_dataset
from ultrabench_eval.data.image_store import open_store, read_grayscale, stale_temp_dirs
from ultrabench_eval.data.task_check import check_task
from ultrabench_eval.features import cache_admin


def _edit(folder: Path, split: str, index: int, **changes) -> None:
    records = json.loads((folder / f"{split}.json").read_text())
    records[index] = {**records[index], **changes}
    (folder / f"{split}.json").write_text(json.dumps(records))


@pytest.fixture
def toy(tmp_path):
    return make_dataset(tmp_path / "data"), tmp_path / "data", tmp_path / "data" / "toy_v1"


# -- paths must stay inside the task folder ------------------------------------------


def _outside(tmp_path: Path, folder: Path) -> Path:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    shutil.copy(folder / "images" / "train_000.png", secret)
    return secret


@pytest.mark.parametrize("kind", ["relative", "absolute", "mask", "symlink"])
def test_paths_outside_the_task_folder_are_refused(toy, tmp_path, kind):
    card, data, folder = toy
    secret = _outside(tmp_path, folder)
    if kind == "relative":
        _edit(folder, "train", 2, image="../../outside/secret.png")
        shown = "train.json record 2: image path ../../outside/secret.png"
    elif kind == "absolute":
        _edit(folder, "test", 1, image=str(secret))
        shown = f"test.json record 1: image path {secret}"
    elif kind == "mask":
        _edit(folder, "validation", 0, scan_mask="/etc/hostname")
        shown = "validation.json record 0: scan_mask path /etc/hostname"
    else:
        (folder / "images" / "link.png").symlink_to(secret)
        _edit(folder, "train", 0, image="images/link.png")
        shown = "train.json record 0: image path images/link.png"
    with pytest.raises(DatasetError, match=f"{shown} lies outside the task folder"):
        open_dataset(card, data)
    report = check_task(card, data)
    assert not report.passed and "outside the task folder" in report.findings[0].text


def test_a_symlink_inside_the_folder_is_followed(toy):
    card, data, folder = toy
    (folder / "images" / "link.png").symlink_to(folder / "images" / "train_000.png")
    _edit(folder, "train", 0, image="images/link.png")
    assert open_dataset(card, data).splits["train"].ids[0] == "images/link.png"


def test_a_mask_that_cannot_be_decoded_is_named_not_the_image(toy, tmp_path):
    card, data, folder = toy
    (folder / "masks" / "scan" / "train_001.png").write_bytes(b"not a png")
    split = open_dataset(card, data).splits["train"]
    with pytest.raises(UserError, match="cannot decode scan mask .*train_001.png"):
        open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)


# -- overlap between splits ------------------------------------------------------------


def test_overlap_by_path_content_and_group_is_refused(toy, tmp_path):
    card, data, folder = toy
    _edit(folder, "test", 0, image="images/train_000.png", patient="solo")  # path
    shutil.copy(folder / "images" / "train_001.png", folder / "images" / "test_001.png")  # bytes
    _edit(folder, "test", 1, patient="solo1")
    _edit(folder, "validation", 0, patient="ptrain2")  # group
    with pytest.raises(OverlapError) as caught:
        open_dataset(card, data, overlap="refuse", digest_cache=tmp_path / "cache")
    text = str(caught.value)
    assert "\n" not in text
    assert "train.json and test.json share 1 image path(s) (e.g. images/train_000.png)" in text
    assert "train.json and test.json share 1 image content(s) (e.g. images/train_001.png)" in text
    assert "train.json and validation.json share 1 patient(s) (e.g. ptrain2)" in text
    assert "--allow-overlap" in text
    allowed = open_dataset(card, data, overlap="allow", digest_cache=tmp_path / "cache")
    assert allowed.overlap is not None and len(allowed.overlap) == 3
    assert open_dataset(card, data).overlap is None  # the default does not look


def test_a_group_field_no_record_has_is_refused_not_ignored(toy, tmp_path):
    card, data, _ = toy
    misspelt = dataclasses.replace(card, group_field="patiend")
    with pytest.raises(DatasetError, match=r"no record has the card's group field 'patiend'"):
        open_dataset(misspelt, data, overlap="refuse", digest_cache=tmp_path / "cache")
    open_dataset(misspelt, data)  # readers that do not check overlap are not stopped


def test_a_clean_task_has_no_overlap_and_digests_are_read_once(toy, tmp_path, monkeypatch):
    card, data, _ = toy
    cache = tmp_path / "cache"
    card = card.__class__(**{**card.__dict__, "group_field": None})
    assert open_dataset(card, data, overlap="allow", digest_cache=cache).overlap == ()
    calls = []
    monkeypatch.setattr(overlap, "file_digest", lambda path: calls.append(path) or "x")
    open_dataset(card, data, overlap="refuse", digest_cache=cache)
    assert calls == []  # the second run only stats the files
    assert (cache / "images" / card.dataset / overlap.DIGESTS_FILE).is_file()


# -- 16-bit PNG by its bit depth -------------------------------------------------------


def test_a_16_bit_png_is_scaled_by_its_bit_depth(tmp_path):
    original = np.array([[0, 10, 100], [128, 200, 250]], dtype=np.uint8)  # max 250, not 255
    path = tmp_path / "deep.png"
    Image.fromarray(original.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(read_grayscale(path), original)


# -- content checked on open ---------------------------------------------


def test_a_damaged_store_is_rebuilt_with_one_warning(toy, tmp_path, capsys):
    card, data, _ = toy
    split = open_dataset(card, data).splits["train"]
    cache = tmp_path / "cache"
    good = np.array(open_store(split, card.dataset, 32, cache, progress=False).images)
    images = image_store.store_dir(cache, card.dataset, "train", 32) / "images.u8"
    raw = bytearray(images.read_bytes())
    raw[len(raw) // 2 :] = bytes(len(raw) - len(raw) // 2)  # zero the second half, size intact
    images.write_bytes(bytes(raw))
    capsys.readouterr()
    image_store._VERIFIED.clear()  # a new process
    store = open_store(split, card.dataset, 32, cache, progress=False)
    np.testing.assert_array_equal(store.images, good)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "content hash" in warnings[0]


# -- the environment -----------------------------------------------------------------


def test_a_full_disk_is_one_line_before_writing(toy, tmp_path, monkeypatch):
    card, data, _ = toy
    split = open_dataset(card, data).splits["train"]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(image_store.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(UserError, match="not enough free space for an image store"):
        open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)
    leftovers = list((tmp_path / "cache").rglob("*.tmp-*"))
    assert leftovers == []


def test_a_cache_path_that_is_a_file_is_one_line(toy, tmp_path):
    card, data, _ = toy
    split = open_dataset(card, data).splits["train"]
    (tmp_path / "cache").write_text("a file")
    with pytest.raises(UserError, match="cannot write the image store in .*--cache"):
        open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)


def test_a_results_folder_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_writable_folder(tmp_path / "file" / "results", "results folder", "--results")
    check_writable_folder(tmp_path / "new" / "results", "results folder", "--results")
    assert not (tmp_path / "new").exists()  # checking leaves nothing behind


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def _leftovers(folder: Path) -> dict[str, Path]:
    host = socket.gethostname()
    made = {
        "dead": folder / f".train-32px-bicubic.tmp-{host}-{_dead_pid()}",
        "mine": folder / f".test-32px-bicubic.tmp-{host}-{os.getpid()}",
        "old": folder / ".validation-32px-bicubic.tmp-12345",
        "recent": folder / ".validation-64px-bicubic.tmp-otherhost-1",
    }
    for path in made.values():
        (path / "sub").mkdir(parents=True)
    day_ago = time.time() - image_store.STALE_AFTER_S - 60
    os.utime(made["old"], (day_ago, day_ago))
    return made


def test_stale_build_folders_go_with_the_next_build(toy, tmp_path):
    card, data, _ = toy
    cache = tmp_path / "cache"
    folder = cache / "images" / card.dataset
    made = _leftovers(folder)
    assert sorted(stale_temp_dirs(folder)) == sorted([made["dead"], made["old"]])
    split = open_dataset(card, data).splits["validation"]
    open_store(split, card.dataset, 32, cache, progress=False)
    assert not made["dead"].exists() and not made["old"].exists()
    assert made["mine"].exists() and made["recent"].exists()


def test_cache_rm_all_removes_stale_build_folders(tmp_path):
    folder = tmp_path / "cache" / "images" / "toy_v1"
    made = _leftovers(folder)
    found = cache_admin.entries(tmp_path / "cache")
    assert {e.paths[0] for e in found} == {made["dead"], made["old"]}
    assert {e.detail["split"] for e in found} == {"train", "validation"}
    cache_admin.remove(cache_admin.select(found, everything=True))
    assert not made["dead"].exists() and not made["old"].exists() and made["mine"].exists()


def test_bench_refuses_overlap_and_records_allow_overlap(toy, tmp_path, monkeypatch, capsys):
    from ultrabench_eval.cli.parser import main
    from ultrabench_eval.core.registry import TASKS
    from ultrabench_eval.results.record import read_records

    _, data, folder = toy
    _edit(folder, "test", 0, image="images/train_000.png", label=0)
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text("name: toy\ndataset: toy_v1\nclasses: [a, b]\n")
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    monkeypatch.setattr(TASKS, "_populated", False)
    argv = ["bench", "--model", "pixels", "--tasks", "toy", "--probe", "linear", "--seeds", "1"]
    argv += ["--fractions", "100", "--device", "cpu", "--no-progress", "--data", str(data)]
    argv += ["--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]
    assert main(argv) == 2
    assert "share 1 image path(s)" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    assert main([*argv, "--allow-overlap"]) == 0
    (record,) = read_records(tmp_path / "results")
    assert record.task.allow_overlap == [
        "train.json and test.json share 1 image path(s) (e.g. images/train_000.png)"
    ]
