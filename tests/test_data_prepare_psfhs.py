"""PSFHS through ultrabench's processor: .mha images and labels to the pubic symphysis and
fetal head segmentation task."""

import numpy as np
import pytest
from PIL import Image
from raw_trees_segmentation import mask_values, prepare_and_read, split_sizes, write_psfhs

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.prepare import psfhs


def test_raw_tree_to_segmentation_task(tmp_path):
    sizes = write_psfhs(tmp_path / "raw" / "PSFHS")  # the archive's wrapper folder is found
    prepared, dataset = prepare_and_read("psfhs-seg", tmp_path / "raw", tmp_path / "data")
    assert prepared.preparer == "ultrabench:psfhs" and split_sizes(dataset) == sizes
    assert mask_values(dataset) == {0, 1, 2}
    # the label file's values are the mask's, pixel for pixel; the image is the channels' mean
    import SimpleITK as sitk

    record = dataset.splits["train"].records[0]
    name = record.image.removeprefix("images/").replace(".png", ".mha")
    label = sitk.GetArrayFromImage(sitk.ReadImage(tmp_path / "raw/PSFHS/label_mha" / name))
    assert np.array_equal(np.asarray(Image.open(dataset.root / record.mask)), label)
    image = sitk.GetArrayFromImage(sitk.ReadImage(tmp_path / "raw/PSFHS/image_mha" / name))
    assert np.array_equal(np.asarray(Image.open(dataset.root / record.image)), image[0])


def test_missing_label_is_named(tmp_path):
    write_psfhs(tmp_path, images=4)
    (tmp_path / "label_mha" / "00003.mha").unlink()
    with pytest.raises(
        UserError, match=r"PSFHS download at .* is incomplete: label_mha/ lacks 00003\.mha$"
    ):
        psfhs.locate(tmp_path)


def test_a_folder_without_label_mha_is_rejected(tmp_path):
    (tmp_path / "image_mha").mkdir()
    with pytest.raises(UserError, match="does not hold the PSFHS download: expected image_mha/"):
        psfhs.locate(tmp_path)
