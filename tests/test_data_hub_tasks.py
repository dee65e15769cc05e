"""Task cards for Hugging Face datasets: a card made from a dataset's features (classes from its
ClassLabel names or its text values, split sizes as the folder is written, carving included, the
licence from the metadata or a local README's front matter; one class is one line); the card an
exported folder carries; `cards_for_data` pointing registered cards at a dataset (their classes
kept, a generated task refused) or registering the dataset's own card; and `card_yaml`, which
reads back as the same card."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
import yaml
from conftest import make_dataset
from hub_datasets import save_to_disk
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.hub import tasks as hub_tasks
from ultrabench_eval.data.hub.load import LoadedSource
from ultrabench_eval.data.hub.materialise import hub_task
from ultrabench_eval.data.hub.source import HubSource
from ultrabench_eval.data.hub.tasks import (
    EXPORTED_CARD,
    card_from_features,
    cards_for_data,
    exported_card,
    task_name,
)
from ultrabench_eval.data.task_card import SPLITS, TaskCard, card_yaml, read_card

SHA = "0123456789abcdef0123456789abcdef01234567"
SEG = TaskCard(
    name="lesion-seg",
    dataset="lesion_seg_v1",
    classes=("background", "lesion"),
    kind="segmentation",
    mask_field="lesion_mask",
    mask_values=(0, 255),
    eval_size=128,
    organ="breast",
    license="CC BY 4.0",
    split_sizes={"train": 8, "validation": 2, "test": 4},
)


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _loaded(
    source: HubSource, labels: dict[str, list], feature=None, revision=None, **info
) -> LoadedSource:
    """In-memory splits of tiny images with the given label values."""
    features = datasets.Features(
        {"image": datasets.Image(), "label": feature or datasets.Value("string")}
    )
    splits = {
        split: datasets.Dataset.from_dict(
            {
                "image": [
                    {"bytes": _png(i), "path": f"{split}{i}.png"} for i in range(len(values))
                ],
                "label": values,
            },
            features=features,
        )
        for split, values in labels.items()
    }
    return LoadedSource(source, splits, revision=revision, **info)


@pytest.fixture
def saved(tmp_path) -> tuple[TaskCard, Path]:
    """A folder task (6/4/4 images, two classes, patients, scan masks) saved with save_to_disk."""
    card = make_dataset(tmp_path / "data", counts={"train": 6, "validation": 4, "test": 4})
    return card, save_to_disk(tmp_path / "data" / card.dataset, card, tmp_path / "ds")


def test_a_card_from_class_label_features(tmp_path, saved):
    task, folder = saved
    source = HubSource(path=str(folder))
    card = card_from_features("hf-ds", source)
    assert card.name == "hf-ds" and card.dataset == source.slug
    assert card.classes == task.classes and card.kind == "classification"
    assert card.split_sizes == {"train": 6, "validation": 4, "test": 4}
    assert card.source == str(folder) and card.license == ""
    assert card.hf == replace(
        source,
        image_column="image",
        label_column="label",
        group_column="patient",
        scan_mask_column="scan_mask",
    )
    # the card reads its folder: every split as sized
    opened = open_dataset(card, tmp_path / "unused", digest_cache=tmp_path / "cache")
    assert {s: len(opened.splits[s]) for s in SPLITS} == card.split_sizes


@pytest.mark.parametrize(
    ("feature", "labels", "classes"),
    [
        (None, ["malignant", "benign", "benign"], ("benign", "malignant")),
        (datasets.Value("int64"), [0, 2, 1], ("0", "1", "2")),
        (
            datasets.ClassLabel(names=["normal", "cyst", "mass"]),
            [0, 1, 1],
            ("normal", "cyst", "mass"),
        ),
    ],
)
def test_classes_from_the_label_column(feature, labels, classes):
    source = HubSource(id="org/name")
    loaded = _loaded(source, {"train": labels, "validation": labels[:2], "test": labels}, feature)
    card = card_from_features("hf-name", source, loaded)
    assert card.classes == classes
    assert card.split_sizes == {"train": 3, "validation": 2, "test": 3}


def test_a_hub_card_is_pinned_to_the_commit_and_carries_the_metadata():
    source = HubSource(id="org/thyroid-us", revision="main")
    loaded = _loaded(
        source,
        {"train": ["a", "b"] * 3, "valid": ["a", "b"], "test": ["b", "a"]},
        revision=SHA,
        license="cc-by-4.0",
        citation="  @article{x}\n",
        description="Thyroid\nnodules,   benign or malignant.",
        homepage="https://huggingface.co/datasets/org/thyroid-us",
    )
    card = card_from_features("hf-thyroid-us", source, loaded)
    assert card.hf.revision == SHA and card.hf.id == "org/thyroid-us"
    assert card.license == "cc-by-4.0" and card.citation == "@article{x}"
    assert card.description == "Thyroid nodules, benign or malignant."
    assert card.source == "https://huggingface.co/datasets/org/thyroid-us"
    assert card.split_sizes == {"train": 6, "validation": 2, "test": 2}


def test_split_sizes_count_the_carved_validation_as_the_folder_is_written(tmp_path):
    task = make_dataset(tmp_path / "data", counts={"train": 30, "test": 6})
    folder = save_to_disk(
        tmp_path / "data" / task.dataset, task, tmp_path / "ds", splits=("train", "test")
    )
    source = HubSource(path=str(folder), validation_fraction=0.2, seed=2)
    card = card_from_features("hf-ds", source)
    sizes = card.split_sizes
    assert sizes["train"] + sizes["validation"] == 30 and sizes["test"] == 6
    assert 4 <= sizes["validation"] <= 8 and sizes["validation"] % 2 == 0  # whole patients
    provenance = hub_task(card, tmp_path / "cache")[2]
    opened = open_dataset(card, tmp_path / "unused", digest_cache=tmp_path / "cache")
    assert {s: len(opened.splits[s]) for s in SPLITS} == sizes
    assert provenance["validation"]["images"] == sizes["validation"]


@pytest.mark.parametrize(
    ("front", "licence"),
    [
        ("license: cc-by-4.0\n", "cc-by-4.0"),
        ("license: other\nlicense_name: thyroid-research-terms\n", "thyroid-research-terms"),
        ("license:\n- cc-by-4.0\n- mit\n", "cc-by-4.0, mit"),
    ],
)
def test_the_licence_of_a_local_dataset_comes_from_its_readme(saved, front, licence):
    _, folder = saved
    (folder / "README.md").write_text(f"---\n{front}pretty_name: Thyroid\n---\n# Thyroid\n")
    assert card_from_features("hf-ds", HubSource(path=str(folder))).license == licence


def test_a_readme_without_front_matter_gives_no_licence(saved):
    _, folder = saved
    (folder / "README.md").write_text("# Thyroid\nlicense: mit\n")
    assert card_from_features("hf-ds", HubSource(path=str(folder))).license == ""


@pytest.mark.parametrize(
    ("feature", "labels"),
    [
        (datasets.ClassLabel(names=["normal"]), [0, 0]),
        (None, ["normal", "normal"]),
        (datasets.Value("int32"), [0, 0]),
    ],
)
def test_one_class_is_one_line(feature, labels):
    source = HubSource(id="org/name")
    loaded = _loaded(source, {"train": labels, "test": labels}, feature)
    with pytest.raises(UserError) as exc:
        card_from_features("hf-name", source, loaded)
    text = str(exc.value)
    assert "\n" not in text and "has one class" in text and "two or more" in text


def test_task_names():
    assert task_name(HubSource(id="org/thyroid-us")) == "hf-org--thyroid-us"
    assert task_name(HubSource(path="/data/my thyroid (v2)")) == "hf-my-thyroid-v2"


def test_task_name_of_a_file_drops_its_suffix(tmp_path):
    (tmp_path / "train.parquet").write_bytes(b"")
    assert task_name(HubSource(path=str(tmp_path / "train.parquet"))) == "hf-train"


def _export_folder(path: Path, card: TaskCard, **extra) -> Path:
    path.mkdir(parents=True)
    data = {**yaml.safe_load(card_yaml(card)), **extra}
    (path / EXPORTED_CARD).write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_exported_folder_carries_its_card(tmp_path):
    # an exported card's own hf block names where it was exported from: the folder replaces it
    folder = _export_folder(tmp_path / "export", SEG, hf={"id": "org/elsewhere"})
    source = HubSource(path=str(folder))
    card = exported_card(source)
    assert card == replace(SEG, dataset=source.slug, hf=source, path=folder / EXPORTED_CARD)


def test_only_an_exported_folder_carries_a_card(tmp_path):
    assert exported_card(HubSource(id="org/name")) is None
    (tmp_path / "plain").mkdir()
    assert exported_card(HubSource(path=str(tmp_path / "plain"))) is None
    (tmp_path / "x.parquet").write_bytes(b"")
    assert exported_card(HubSource(path=str(tmp_path / "x.parquet"))) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name: [unclosed\n", "cannot read the exported task card"),
        ("name: x\ndataset: y\nclasses: [a]\n", "classes must have at least 2"),
        ("name: x\ndataset: y\nclasses: [a, b]\ncolour: red\n", "unknown field(s) colour"),
    ],
)
def test_a_broken_exported_card_is_one_line(tmp_path, text, says):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / EXPORTED_CARD).write_text(text)
    with pytest.raises(UserError) as exc:
        exported_card(HubSource(path=str(tmp_path / "export")))
    line = str(exc.value)
    assert "\n" not in line and says in line and EXPORTED_CARD in line


def _hub_download(monkeypatch, answer) -> list:
    """`hf_hub_download` answering `answer` (a file, or an exception raised); the calls."""
    calls = []

    def download(repo_id, filename, repo_type=None, revision=None, **kwargs):
        calls.append((repo_id, filename, repo_type, revision))
        if isinstance(answer, BaseException):
            raise answer
        return str(answer)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return calls


def test_a_hub_export_carries_its_card_read_at_the_loaded_commit(tmp_path, monkeypatch):
    file = _export_folder(tmp_path / "download", SEG) / EXPORTED_CARD
    calls = _hub_download(monkeypatch, file)
    source = HubSource(id="org/seg", revision="main")
    files = [EXPORTED_CARD, "README.md"]
    loaded = LoadedSource(source, {}, revision=SHA, extra={"files": files})
    card = exported_card(source, loaded)
    pinned = replace(source, revision=SHA)
    assert card == replace(SEG, dataset=pinned.slug, hf=pinned, path=file)
    assert calls == [("org/seg", EXPORTED_CARD, "dataset", SHA)]


def test_a_hub_dataset_without_a_card_file_is_not_asked_for_one(monkeypatch):
    calls = _hub_download(monkeypatch, AssertionError("downloaded"))
    source = HubSource(id="org/name")
    loaded = LoadedSource(source, {}, revision=SHA, extra={"files": ["README.md"]})
    assert exported_card(source, loaded) is None
    assert exported_card(source) is None
    assert calls == []


def test_offline_a_hub_card_not_cached_is_none(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")
    calls = _hub_download(monkeypatch, missing)
    assert exported_card(HubSource(id="org/name", revision="v1")) is None
    assert calls == [("org/name", EXPORTED_CARD, "dataset", "v1")]


def test_a_hub_card_that_cannot_be_fetched_is_one_line(monkeypatch):
    _hub_download(monkeypatch, ConnectionError("Max retries exceeded"))
    source = HubSource(id="org/name")
    loaded = LoadedSource(source, {}, revision=SHA, extra={"files": [EXPORTED_CARD]})
    with pytest.raises(UserError) as exc:
        exported_card(source, loaded)
    text = str(exc.value)
    assert "\n" not in text and "cannot reach the Hugging Face hub for hf://org/name" in text


@pytest.mark.parametrize("with_card", [True, False])
def test_without_tasks_a_hub_dataset_is_loaded_once(
    tmp_path, monkeypatch, restored_tasks, with_card
):
    file = _export_folder(tmp_path / "download", SEG) / EXPORTED_CARD
    _hub_download(monkeypatch, file)
    loads = []

    def load_source(source, progress=False):
        loads.append(source)
        loaded = _loaded(source, {"train": ["a", "b"] * 4, "test": ["a", "b"]}, revision=SHA)
        files = [EXPORTED_CARD] if with_card else []
        return replace(loaded, extra={"files": files})

    monkeypatch.setattr(hub_tasks, "load_source", load_source)
    source = HubSource(id="org/thyroid-us")
    names = cards_for_data(source, None, restored_tasks)
    assert names == (["lesion-seg"] if with_card else ["hf-org--thyroid-us"])
    card = restored_tasks.get(names[0])
    assert card.hf.revision == SHA and card.hf.id == "org/thyroid-us"
    assert len(loads) == 1


def test_named_tasks_keep_their_classes_and_read_the_source(tmp_path, restored_tasks):
    toy = TaskCard(name="toy", dataset="toy_v1", classes=("b", "a"), group_field="patient")
    restored_tasks.register("toy", toy, replace=True)
    source = HubSource(path=str(tmp_path / "ds"))
    assert cards_for_data(source, ["toy"], restored_tasks) == ["toy"]
    card = restored_tasks.get("toy")
    assert card == replace(toy, dataset=source.slug, hf=source)


def test_a_named_tasks_own_hf_block_keeps_its_columns_and_carving(tmp_path, restored_tasks):
    theirs = HubSource(
        id="org/thyroid-us",
        revision="v1",
        config="us",
        label_column="diagnosis",
        group_column="pid",
        mask_column="mask",
        splits={"test": "eval"},
        validation_fraction=0.2,
        seed=4,
    )
    toy = TaskCard(name="toy", dataset="toy_v1", classes=("a", "b"), hf=theirs)
    restored_tasks.register("toy", toy, replace=True)
    ours = HubSource(path=str(tmp_path / "ds"), image_column="scan", group_column="case")
    cards_for_data(ours, ["toy"], restored_tasks)
    merged = restored_tasks.get("toy").hf
    assert merged == HubSource(
        path=str(tmp_path / "ds"),
        image_column="scan",
        label_column="diagnosis",
        group_column="case",
        mask_column="mask",
        splits={"test": "eval"},
        validation_fraction=0.2,
        seed=4,
    )
    assert restored_tasks.get("toy").dataset == ours.slug


def test_a_generated_task_cannot_read_a_dataset(tmp_path, restored_tasks):
    source = HubSource(path=str(tmp_path / "ds"))
    before = restored_tasks.get("synth-lesion")
    with pytest.raises(UserError) as exc:
        cards_for_data(source, ["synth-lesion"], restored_tasks)
    text = str(exc.value)
    assert "\n" not in text and "task synth-lesion is generated" in text
    assert restored_tasks.get("synth-lesion") is before
    with pytest.raises(UserError):
        cards_for_data(source, ["no-such-task"], restored_tasks)


def test_without_tasks_the_datasets_own_card_is_registered(saved, restored_tasks):
    _, folder = saved
    source = HubSource(path=str(folder))
    assert cards_for_data(source, None, restored_tasks) == ["hf-ds"]
    card = restored_tasks.get("hf-ds")
    assert card.hf.path == str(folder) and card.classes == ("a", "b")
    assert card.split_sizes == {"train": 6, "validation": 4, "test": 4}


def test_without_tasks_an_export_registers_the_card_it_carries(tmp_path, restored_tasks):
    folder = _export_folder(tmp_path / "export", SEG)
    source = HubSource(path=str(folder))
    assert cards_for_data(source, [], restored_tasks) == ["lesion-seg"]
    card = restored_tasks.get("lesion-seg")
    assert card.is_segmentation and card.hf == source and card.mask_values == (0, 255)


@pytest.mark.parametrize("which", ["features", "segmentation"])
def test_card_yaml_reads_back_as_the_same_card(tmp_path, saved, which):
    _, folder = saved
    if which == "features":
        card = card_from_features("hf-ds", HubSource(path=str(folder), seed=0))
    else:
        card = replace(SEG, hf=HubSource(id="org/seg", revision=SHA, splits={"validation": "dev"}))
    text = card_yaml(card)
    assert text.startswith(f"name: {card.name}\n")
    assert "path:" not in text.replace("  path:", "") and "organ: ''" not in text
    assert TaskCard.from_dict(yaml.safe_load(text)) == replace(card, path=None)
    # as a card file elsewhere: the dataset's absolute path is kept as it is
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "card.yaml").write_text(text)
    read = read_card(tmp_path / "cards" / "card.yaml")
    assert read == replace(card, path=tmp_path / "cards" / "card.yaml")
