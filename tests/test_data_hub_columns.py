"""Which columns of a dataset hold the image, the label, the group and the masks: found from the
features (the one Image column, `image` among several, the card's label field, the one ClassLabel,
a `label` column of integers or text, a usual patient/case name, a mask column for segmentation),
or taken as named and checked; a missing or wrong column, or one column serving twice, is one line
naming the flag that fixes it. And labels as the card's class indices, by name or index, with
every value outside the classes named in one line."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub.columns import (
    GROUP_NAMES,
    Columns,
    class_indices,
    dataset_classes,
    find_columns,
)
from ultrabench_eval.data.hub.source import HubSource

IMAGE = datasets.Image()
CLASSES = datasets.ClassLabel(names=["a", "b"])
TEXT = datasets.Value("string")
INT = datasets.Value("int64")


def _features(**columns) -> datasets.Features:
    return datasets.Features(columns)


def _find(
    features, *, segmentation=False, label_field=None, group_field=None, mask_field=None, **named
) -> Columns:
    return find_columns(
        features,
        HubSource(path="/data/ds", **named),
        "ds",
        segmentation=segmentation,
        label_field=label_field,
        group_field=group_field,
        mask_field=mask_field,
    )


def _error(features, **kwargs) -> str:
    with pytest.raises(UserError) as exc:
        _find(features, **kwargs)
    text = str(exc.value)
    assert "\n" not in text and text.startswith("dataset ds")
    return text


def test_a_usual_dataset_finds_every_column():
    features = _features(image=IMAGE, label=CLASSES, patient=TEXT, scan_mask=IMAGE)
    assert _find(features) == Columns(
        image="image", label="label", group="patient", mask=None, scan_mask="scan_mask"
    )


def test_the_one_image_column_is_the_image_whatever_its_name():
    assert _find(_features(frame=IMAGE, label=CLASSES)).image == "frame"


def test_image_is_taken_among_several_image_columns():
    features = _features(thumbnail=IMAGE, image=IMAGE, label=CLASSES)
    assert _find(features).image == "image"


def test_several_image_columns_without_image_is_one_line():
    features = _features(left=IMAGE, right=IMAGE, label=CLASSES)
    text = _error(features)
    assert "several image columns (left, right)" in text and "--image-column" in text
    assert _find(features, image_column="right").image == "right"


def test_no_image_column_is_one_line():
    text = _error(_features(path=TEXT, label=CLASSES))
    assert "has no image column" in text and "path (string), label (ClassLabel)" in text


def test_a_named_image_column_must_exist_and_hold_images():
    features = _features(image=IMAGE, label=CLASSES, patient=TEXT)
    text = _error(features, image_column="scan")
    assert "has no column 'scan'" in text and "--image-column" in text
    text = _error(features, image_column="patient")
    assert "column 'patient' holds string, not images" in text


def test_the_cards_label_field_is_the_label_when_the_dataset_has_it():
    features = _features(image=IMAGE, label=CLASSES, diagnosis=TEXT)
    assert _find(features, label_field="diagnosis").label == "diagnosis"
    assert _find(features, label_field="absent").label == "label"


def test_the_one_class_label_column_is_the_label():
    features = _features(image=IMAGE, finding=CLASSES, label_text=TEXT)
    assert _find(features).label == "finding"


@pytest.mark.parametrize("value", [INT, datasets.Value("int8"), datasets.Value("uint16"), TEXT])
def test_a_label_column_of_integers_or_text_is_the_label(value):
    assert _find(_features(image=IMAGE, label=value)).label == "label"


def test_no_label_column_is_one_line():
    text = _error(_features(image=IMAGE, patient=TEXT))
    assert "has no label column" in text and "--label-column" in text
    text = _error(_features(image=IMAGE, view=CLASSES, organ=CLASSES))
    assert "(view, organ are ClassLabel columns)" in text and "--label-column" in text
    assert _find(_features(image=IMAGE, view=CLASSES, organ=CLASSES), label_column="organ").label


@pytest.mark.parametrize("value", [datasets.Value("float32"), datasets.Value("bool"), IMAGE])
def test_a_label_that_is_not_a_class_is_one_line(value):
    text = _error(_features(image=IMAGE, label=value))
    assert "column 'label' holds" in text and "not class labels" in text
    features = _features(image=IMAGE, label=CLASSES, score=value)
    assert "column 'score' holds" in _error(features, label_column="score")


def test_a_named_label_column_must_exist():
    text = _error(_features(image=IMAGE, label=CLASSES), label_column="diagnosis")
    assert "has no column 'diagnosis'" in text and "--label-column" in text


@pytest.mark.parametrize("name", GROUP_NAMES)
def test_a_group_column_is_found_by_its_usual_name(name):
    assert _find(_features(image=IMAGE, label=CLASSES, **{name: TEXT})).group == name


def test_group_choice():
    assert _find(_features(image=IMAGE, label=CLASSES)).group is None
    both = _features(image=IMAGE, label=CLASSES, video=INT, patient=TEXT)
    assert _find(both).group == "patient"  # in GROUP_NAMES order
    assert _find(both, group_field="video").group == "video"  # the card's group field first
    site = _features(image=IMAGE, label=CLASSES, site=TEXT)
    assert _find(site, group_field="site").group == "site"
    assert _find(site, group_column="site").group == "site"
    # an image column called `case` is not a group
    assert _find(_features(image=IMAGE, label=CLASSES, case=IMAGE)).group is None
    text = _error(_features(image=IMAGE, label=CLASSES, case=IMAGE), group_column="case")
    assert "not a patient or case id" in text and "--group-column" in text
    assert "--group-column" in _error(_features(image=IMAGE, label=CLASSES), group_column="pid")


def test_a_segmentation_task_finds_its_mask_column_and_no_label():
    features = _features(image=IMAGE, mask=IMAGE, patient=TEXT)
    assert _find(features, segmentation=True) == Columns(
        image="image", label=None, group="patient", mask="mask", scan_mask=None
    )
    # the card's mask field names the column when the dataset has it; the image is the other
    features = _features(frame=IMAGE, tumor_mask=IMAGE)
    columns = _find(features, segmentation=True, mask_field="tumor_mask")
    assert (columns.image, columns.mask) == ("frame", "tumor_mask")
    assert _find(features, segmentation=True, mask_column="tumor_mask").mask == "tumor_mask"


def test_a_segmentation_task_without_a_mask_column_is_one_line():
    text = _error(_features(image=IMAGE, label=CLASSES), segmentation=True)
    assert "no label-mask column" in text and "mask_column" in text
    text = _error(_features(image=IMAGE, mask=TEXT), segmentation=True, mask_column="mask")
    assert "column 'mask' holds string, not images" in text


def test_a_scan_mask_column_is_found_or_named():
    features = _features(image=IMAGE, label=CLASSES, scan_mask=IMAGE, fov=IMAGE)
    assert _find(features).scan_mask == "scan_mask"
    assert _find(features, scan_mask_column="fov").scan_mask == "fov"
    text_mask = _features(image=IMAGE, label=CLASSES, scan_mask=TEXT)
    assert _find(text_mask).scan_mask is None
    assert "holds string, not images" in _error(text_mask, scan_mask_column="scan_mask")


@pytest.mark.parametrize(
    ("features", "kwargs"),
    [
        (_features(image=IMAGE, mask=IMAGE), {"image_column": "mask", "segmentation": True}),
        (
            _features(image=IMAGE, mask=IMAGE),
            {"mask_column": "image", "image_column": "image", "segmentation": True},
        ),
        (
            _features(image=IMAGE, label=CLASSES),
            {"scan_mask_column": "image", "image_column": "image"},
        ),
    ],
)
def test_a_column_serving_twice_is_one_line(features, kwargs):
    text = _error(features, **kwargs)
    assert "one column serves twice" in text and "--image-column" in text


def test_class_indices_of_a_class_label_by_name():
    feature = {"label": datasets.ClassLabel(names=["a", "b"])}
    assert class_indices(feature, [0, 1, 1], "label", ("a", "b"), "ds").tolist() == [0, 1, 1]
    # the card lists the same classes in another order: by name, not by index
    assert class_indices(feature, [0, 1, 1], "label", ("b", "a"), "ds").tolist() == [1, 0, 0]
    assert class_indices(feature, ["b", "a"], "label", ("a", "b"), "ds").tolist() == [1, 0]
    out = class_indices(feature, [1], "label", ("a", "b"), "ds")
    assert out.dtype == np.int64


def test_class_label_names_outside_the_cards_classes_are_one_line():
    feature = {"label": datasets.ClassLabel(names=["a", "cyst"])}
    with pytest.raises(UserError) as exc:
        class_indices(feature, [0, 1, 0], "label", ("a", "b"), "ds split train")
    text = str(exc.value)
    assert "\n" not in text and "dataset ds split train" in text
    assert "outside the card's classes (a, b)" in text and "row 1: 'cyst'" in text


def test_class_label_indices_out_of_range_are_named():
    feature = {"label": datasets.ClassLabel(names=["a", "b"])}
    with pytest.raises(UserError) as exc:
        class_indices(feature, [0, 5, 1], "label", ("a", "b"), "ds")
    assert "row 1: 5" in str(exc.value) and "row 0" not in str(exc.value)


def test_a_class_label_of_minus_one_is_a_missing_label():
    """`datasets` writes a ClassLabel left empty as -1: the line says the label is missing."""
    feature = {"label": datasets.ClassLabel(names=["a", "b"])}
    with pytest.raises(UserError) as exc:
        class_indices(feature, [0, -1, 1, -1], "label", ("a", "b"), "ds")
    assert "rows without a label (None or -1): row 1; row 3; drop them first" in str(exc.value)


def test_integer_labels_of_numbered_classes_are_their_names():
    """Classes named by numbers ("1", "2") take an integer label by name, never by index."""
    feature = {"label": INT}
    assert class_indices(feature, [1, 2, 2], "label", ("1", "2"), "ds").tolist() == [0, 1, 1]
    with pytest.raises(UserError, match=r"row 0: '0'"):
        class_indices(feature, [0, 1], "label", ("1", "2"), "ds")


def test_integer_labels_are_indices():
    feature = {"label": INT}
    assert class_indices(feature, [0, 2, 1], "label", ("a", "b", "c"), "ds").tolist() == [0, 2, 1]
    with pytest.raises(UserError, match=r"row 1: 2; row 2: -1"):
        class_indices(feature, [0, 2, -1], "label", ("a", "b"), "ds")
    with pytest.raises(UserError, match=r"row 0: True"):
        class_indices({"label": datasets.Value("bool")}, [True], "label", ("a", "b"), "ds")


def test_text_labels_are_class_names():
    feature = {"label": TEXT}
    out = class_indices(feature, ["malignant", "benign"], "label", ("benign", "malignant"), "ds")
    assert out.tolist() == [1, 0]
    with pytest.raises(UserError, match=r"row 0: 'cyst'"):
        class_indices(feature, ["cyst", "benign"], "label", ("benign", "malignant"), "ds")


def test_a_missing_label_is_named_and_many_are_counted():
    with pytest.raises(UserError, match=r"rows without a label \(None or -1\): row 0;"):
        class_indices({"label": TEXT}, [None, "a"], "label", ("a", "b"), "ds")
    with pytest.raises(UserError) as exc:
        class_indices({"label": TEXT}, ["x"] * 7, "label", ("a", "b"), "ds")
    text = str(exc.value)
    assert "row 0: 'x'; row 1: 'x'; row 2: 'x'; and 4 more" in text and "row 3" not in text


def test_dataset_classes():
    assert dataset_classes({"label": CLASSES}, [[1, 0]], "label") == ["a", "b"]
    assert dataset_classes({"label": TEXT}, [["c", "a"], ["b", None]], "label") == ["a", "b", "c"]
    # the values there are, in numeric order: labels 1 and 2 are two classes, not three
    assert dataset_classes({"label": INT}, [[0, 3], [1]], "label") == ["0", "1", "3"]
    assert dataset_classes({"label": INT}, [[2, 1], [2]], "label") == ["1", "2"]
    assert dataset_classes({"label": TEXT}, [["10", "2"], ["1"]], "label") == ["1", "2", "10"]
    with pytest.raises(UserError, match="holds no label"):
        dataset_classes({"label": TEXT}, [[None], []], "label")
