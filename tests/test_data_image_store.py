import json
import os

import numpy as np
import pytest
from conftest import make_dataset

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data import image_store, store_build
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import decode_record, open_store, read_grayscale, store_dir


@pytest.fixture
def toy(tmp_path):
    card = make_dataset(tmp_path / "data")
    return card, open_dataset(card, tmp_path / "data"), tmp_path / "cache"


def test_store_holds_decoded_resized_images_and_masks(toy):
    card, dataset, cache = toy
    split = dataset.splits["train"]
    store = open_store(split, card.dataset, 32, cache, progress=False)
    assert store.images.shape == (8, 32, 32) and store.images.dtype == np.uint8
    assert store.ids == split.ids
    image, mask = decode_record(split.root, split.records[3], 32)
    np.testing.assert_array_equal(store.images[3], image)
    np.testing.assert_array_equal(store.masks[3], mask)
    assert set(np.unique(store.masks)) <= {0, 1}


def test_second_open_reuses_the_store(toy):
    card, dataset, cache = toy
    split = dataset.splits["test"]
    first = open_store(split, card.dataset, 32, cache, progress=False)
    stamp = (first.root / "images.u8").stat().st_mtime_ns
    second = open_store(split, card.dataset, 32, cache, progress=False)
    assert (second.root / "images.u8").stat().st_mtime_ns == stamp
    assert second.content_hash == first.content_hash


def test_changed_image_or_order_rebuilds(toy, tmp_path):
    card, dataset, cache = toy
    split = dataset.splits["test"]
    first = open_store(split, card.dataset, 32, cache, progress=False)
    path = split.root / split.records[0].image
    array = read_grayscale(path)
    from PIL import Image

    Image.fromarray(255 - array).save(path)
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock
    changed = open_store(split, card.dataset, 32, cache, progress=False)
    assert changed.content_hash != first.content_hash

    folder = split.root
    records = json.loads((folder / "test.json").read_text())[::-1]
    (folder / "test.json").write_text(json.dumps(records))
    reordered = open_dataset(card, folder.parent).splits["test"]
    store = open_store(reordered, card.dataset, 32, cache, progress=False)
    assert store.ids == reordered.ids
    np.testing.assert_array_equal(store.images[-1], changed.images[0])


def test_missing_mask_is_derived(tmp_path):
    card = make_dataset(tmp_path / "data", with_masks=False)
    split = open_dataset(card, tmp_path / "data").splits["train"]
    store = open_store(split, card.dataset, 48, tmp_path / "cache", progress=False)
    coverage = store.masks.mean()
    assert 0.3 < coverage < 0.95, "a derived mask is the field of view, not the whole image"


def test_undecodable_image_names_the_file_and_writes_nothing(toy):
    card, dataset, cache = toy
    split = dataset.splits["validation"]
    bad = split.root / split.records[2].image
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot decode image .*validation_002.png"):
        open_store(split, card.dataset, 32, cache, progress=False)
    parent = store_dir(cache, card.dataset, "validation", 32).parent
    assert not parent.exists() or list(parent.iterdir()) == []


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 images, and a default worker count of 2 from 8 images on: a tiny split
    still goes through several worker processes."""
    monkeypatch.setattr(store_build, "CHUNK", 4)
    monkeypatch.setattr(image_store, "_PARALLEL_MIN_IMAGES", 8)
    monkeypatch.setattr(store_build, "usable_cpus", lambda: 2)


@pytest.mark.parametrize("with_masks", [False, True])
def test_parallel_build_equals_the_serial_one_byte_for_byte(tmp_path, small_chunks, with_masks):
    card = make_dataset(
        tmp_path / "data", counts={"train": 30, "validation": 2, "test": 2}, with_masks=with_masks
    )
    split = open_dataset(card, tmp_path / "data").splits["train"]
    serial = open_store(split, card.dataset, 24, tmp_path / "c1", workers=1, progress=False)
    parallel = open_store(split, card.dataset, 24, tmp_path / "c2", workers=0, progress=False)
    assert serial.build_stats["workers"] == 1 and parallel.build_stats["workers"] == 2
    for name in ("images.u8", "masks.u8", "meta.json"):
        assert (serial.root / name).read_bytes() == (parallel.root / name).read_bytes(), name


def test_build_stats_after_a_build_none_after_a_reopen(toy):
    card, dataset, cache = toy
    split = dataset.splits["train"]
    stats = open_store(split, card.dataset, 32, cache, progress=False).build_stats
    assert stats["images"] == len(split) and stats["workers"] == 1
    for key in ("seconds", "images_per_s", "decode_s", "resize_s", "mask_s", "write_s"):
        assert stats[key] >= 0, key
    assert open_store(split, card.dataset, 32, cache, progress=False).build_stats is None
    meta = json.loads((store_dir(cache, card.dataset, "train", 32) / "meta.json").read_text())
    assert not {"build_stats", "seconds", "workers"} & set(meta), "no timing in meta.json"


def test_undecodable_image_in_a_worker_names_it_and_writes_nothing(tmp_path, small_chunks):
    card = make_dataset(tmp_path / "data", counts={"train": 16, "validation": 2, "test": 2})
    split = open_dataset(card, tmp_path / "data").splits["train"]
    (split.root / split.records[9].image).write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot decode image .*train_009.png"):
        open_store(split, card.dataset, 24, tmp_path / "cache", workers=2, progress=False)
    parent = store_dir(tmp_path / "cache", card.dataset, "train", 24).parent
    assert list(parent.iterdir()) == []
