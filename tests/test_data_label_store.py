import json
import os

import numpy as np
import pytest
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import DatasetError, open_dataset
from ultrabench_eval.data.label_store import open_label_store
from ultrabench_eval.data.task_card import TaskCard


def _card(**extra):
    fields = {
        "name": "toy-seg",
        "dataset": "toy_seg_v1",
        "classes": ["background", "lesion"],
        "kind": "segmentation",
        "mask_field": "lesion_mask",
        "mask_values": [0, 255],
    }
    return TaskCard.from_dict({**fields, **extra})


def _write_task(root, sizes=(16, 16)):
    """Three splits of 2 images; each mask is a bright square (255) on 0; image 0 of each split
    has a scan mask that hides its left half."""
    folder = root / "toy_seg_v1"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    height, width = sizes
    for split in ("train", "validation", "test"):
        records = []
        for i in range(2):
            stem = f"{split}_{i}.png"
            image = np.full((height, width), 120, np.uint8)
            mask = np.zeros((height, width), np.uint8)
            mask[4:12, 2 + i : 10 + i] = 255
            Image.fromarray(image).save(folder / "images" / stem)
            Image.fromarray(mask).save(folder / "masks" / stem)
            record = {"image": f"images/{stem}", "lesion_mask": f"masks/{stem}"}
            if i == 0:
                scan = np.ones((height, width), np.uint8)
                scan[:, : width // 2] = 0
                Image.fromarray(scan).save(folder / "masks" / f"scan_{stem}")
                record["scan_mask"] = f"masks/scan_{stem}"
            records.append(record)
        (folder / f"{split}.json").write_text(json.dumps(records))
    return folder


def test_masks_become_class_indices_at_the_evaluation_size(tmp_path):
    _write_task(tmp_path)
    card = _card()
    dataset = open_dataset(card, tmp_path)
    store = open_label_store(dataset.splits["train"], card, tmp_path / "cache", size=32)
    assert store.labels.shape == (2, 32, 32) and store.labels.dtype == np.uint8
    assert set(np.unique(store.labels)) == {0, 1}
    # nearest neighbour: the 8 x 8 square at 16 px is 16 x 16 at 32 px
    assert store.labels[0].sum() == 16 * 16
    np.testing.assert_array_equal(store.labels[0, 8:24, 4:20], 1)
    # the scan mask of image 0 hides its left half; image 1 has none: derived from the image
    assert store.valid[0, :, :16].sum() == 0 and store.valid[0, :, 16:].all()
    assert store.ids == dataset.splits["train"].ids


def test_the_store_is_reused_and_rebuilt_when_a_mask_changes(tmp_path):
    folder = _write_task(tmp_path)
    card = _card()
    split = open_dataset(card, tmp_path).splits["train"]
    first = open_label_store(split, card, tmp_path / "cache", size=16)
    again = open_label_store(split, card, tmp_path / "cache", size=16)
    assert again.content_hash == first.content_hash
    mask = np.zeros((16, 16), np.uint8)
    Image.fromarray(mask).save(folder / "masks" / "train_0.png")
    os.utime(folder / "masks" / "train_0.png", ns=(1, 1))
    rebuilt = open_label_store(split, card, tmp_path / "cache", size=16)
    assert rebuilt.content_hash != first.content_hash and rebuilt.labels[0].sum() == 0


def test_a_pixel_value_the_card_does_not_list_is_one_clear_error(tmp_path):
    folder = _write_task(tmp_path)
    mask = np.zeros((16, 16), np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(folder / "masks" / "train_1.png")
    card = _card()
    split = open_dataset(card, tmp_path).splits["train"]
    with pytest.raises(UserError, match=r"train_1.png has pixel value\(s\) 7 .*mask_values"):
        open_label_store(split, card, tmp_path / "cache", size=16)
    assert not (tmp_path / "cache" / "images" / "toy_seg_v1" / "train-labels-16px").exists()


def test_a_mask_of_another_size_or_colour_is_refused(tmp_path):
    folder = _write_task(tmp_path)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "masks" / "train_1.png")
    card = _card()
    split = open_dataset(card, tmp_path).splits["train"]
    with pytest.raises(UserError, match=r"is \(8, 8\) pixels, the image"):
        open_label_store(split, card, tmp_path / "cache", size=16)
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(folder / "masks" / "train_1.png")
    with pytest.raises(UserError, match="channels differ"):
        open_label_store(split, card, tmp_path / "cache", size=16)


def test_a_palette_mask_gives_its_indices_not_its_colours(tmp_path):
    folder = _write_task(tmp_path)
    indices = np.zeros((16, 16), np.uint8)
    indices[2:6, 2:6] = 1
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    palette.save(folder / "masks" / "train_0.png")
    card = _card(mask_values=None)
    split = open_dataset(card, tmp_path).splits["train"]
    with pytest.raises(UserError, match="255"):  # train_1 still has 0/255
        open_label_store(split, card, tmp_path / "cache", size=16)
    Image.fromarray(indices).save(folder / "masks" / "train_1.png")
    store = open_label_store(split, card, tmp_path / "cache", size=16)
    assert store.labels[0].sum() == 16 and store.labels[1].sum() == 16


def test_a_record_without_its_mask_is_named(tmp_path):
    folder = _write_task(tmp_path)
    records = json.loads((folder / "test.json").read_text())
    del records[1]["lesion_mask"]
    (folder / "test.json").write_text(json.dumps(records))
    with pytest.raises(DatasetError, match="test.json record 1 .*no label mask path"):
        open_dataset(_card(), tmp_path)


def test_a_missing_mask_file_or_one_outside_the_folder_is_named(tmp_path):
    folder = _write_task(tmp_path)
    records = json.loads((folder / "test.json").read_text())
    records[0]["lesion_mask"] = "masks/nope.png"
    records[1]["lesion_mask"] = "../elsewhere.png"
    (folder / "test.json").write_text(json.dumps(records))
    with pytest.raises(DatasetError, match="mask path ../elsewhere.png lies outside") as caught:
        open_dataset(_card(), tmp_path)
    assert "mask masks/nope.png not found" in str(caught.value)


def test_alpha_and_soft_masks_are_refused_not_misread(tmp_path):
    folder = _write_task(tmp_path)
    card = _card(mask_values=None)
    split = open_dataset(card, tmp_path).splits["train"]
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[4:8, 4:8, 3] = 255  # the class painted as opacity
    Image.fromarray(rgba, mode="RGBA").save(folder / "masks" / "train_0.png")
    with pytest.raises(UserError, match="transparent alpha channel"):
        open_label_store(split, card, tmp_path / "cache", size=16)
    soft = np.zeros((16, 16), np.float32)
    soft[4:8, 4:8] = 1.0
    soft[3, 3:9] = 0.5
    Image.fromarray(soft, mode="F").save(folder / "masks" / "train_0.tif")
    records = json.loads((folder / "train.json").read_text())
    records[0]["lesion_mask"] = "masks/train_0.tif"
    (folder / "train.json").write_text(json.dumps(records))
    split = open_dataset(card, tmp_path).splits["train"]
    with pytest.raises(UserError, match="fractional values"):
        open_label_store(split, card, tmp_path / "cache", size=16)
