"""Loading a HubSource: a dataset's splits map onto train/validation/test (named, or by their usual
names; a missing train or test, a named split that is not there, or one split serving twice is one
line); a folder `datasets` cannot read is one line; on the hub, an unreachable hub, a dataset not
found and an offline miss are each their own line, and a load records the commit it was loaded at
and the dataset card's licence. No test reaches the network: `HfApi.dataset_info` and
`datasets.load_dataset` are replaced."""

from __future__ import annotations

import io
from types import SimpleNamespace

import datasets
import huggingface_hub
import numpy as np
import pytest
from hub_datasets import one_line
from PIL import Image

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.hub import load as hub_load
from ultrabench_eval.data.hub.load import LoadedSource, load_source, map_splits
from ultrabench_eval.data.hub.source import HubSource

SHA = "0123456789abcdef0123456789abcdef01234567"


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiny(splits=("train", "test"), rows: int = 4) -> datasets.DatasetDict:
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {
                    "image": [
                        {"bytes": _png(10 * i), "path": f"{split}_{i}.png"} for i in range(rows)
                    ],
                    "label": [i % 2 for i in range(rows)],
                },
                features=features,
            )
            for split in splits
        }
    )


def _mapped(names, **source) -> dict:
    source = HubSource(id="org/name", **source)
    return map_splits(LoadedSource(source, dict.fromkeys(names), revision=None))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ["train", "validation", "test"],
            {"train": "train", "validation": "validation", "test": "test"},
        ),
        (["train", "valid", "test"], {"train": "train", "validation": "valid", "test": "test"}),
        (["test", "val", "train"], {"train": "train", "validation": "val", "test": "test"}),
        (
            ["training", "dev", "testing"],
            {"train": "training", "validation": "dev", "test": "testing"},
        ),
        (["train", "test"], {"train": "train", "validation": None, "test": "test"}),
        (["train", "test", "extra"], {"train": "train", "validation": None, "test": "test"}),
    ],
)
def test_splits_map_by_their_usual_names(names, expected):
    assert _mapped(names) == expected


def test_named_splits_come_first():
    assert _mapped(
        ["train", "eval", "holdout"], splits={"test": "eval", "validation": "holdout"}
    ) == {
        "train": "train",
        "validation": "holdout",
        "test": "eval",
    }
    # a named split wins over the usual name
    assert _mapped(["train", "test", "test2"], splits={"test": "test2"})["test"] == "test2"


def test_a_named_split_missing_isone_line():
    with pytest.raises(UserError) as exc:
        _mapped(["train", "test"], splits={"validation": "valid"})
    text = one_line(exc)
    assert "has no split 'valid' (named for validation; it has train, test)" in text


@pytest.mark.parametrize(("names", "missing"), [(["train", "valid"], "test"), (["test"], "train")])
def test_no_train_or_test_isone_line(names, missing):
    with pytest.raises(UserError) as exc:
        _mapped(names)
    text = one_line(exc)
    assert f"has no {missing} split" in text and f"--hf-splits {missing}=NAME" in text


@pytest.mark.parametrize(
    ("names", "splits"),
    [
        (["train", "test"], {"validation": "train"}),
        (["train", "test"], {"test": "train"}),
        (["all", "test"], {"train": "all", "validation": "all"}),
    ],
)
def test_one_split_serving_twice_isone_line(names, splits):
    with pytest.raises(UserError) as exc:
        _mapped(names, splits=splits)
    assert "one split serves twice" in one_line(exc)


def test_a_local_dataset_loads_without_the_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", _no_call("dataset_info"))
    _tiny(("train", "validation", "test")).save_to_disk(str(tmp_path / "ds"))
    loaded = load_source(HubSource(path=str(tmp_path / "ds")))
    assert set(loaded.splits) == {"train", "validation", "test"}
    assert loaded.revision is None and len(loaded.splits["train"]) == 4
    assert set(loaded.fingerprints()) == {"train", "validation", "test"}
    assert list(loaded.features) == ["image", "label"]


def test_a_missing_local_dataset_isone_line(tmp_path):
    with pytest.raises(UserError) as exc:
        load_source(HubSource(path=str(tmp_path / "absent")))
    assert f"dataset {tmp_path / 'absent'} not found" in one_line(exc)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("dataset_dict.json", "{not json"),  # a broken save_to_disk folder
        ("data/train-00000-of-00001.parquet", "not parquet"),  # a broken parquet file
        ("data/train.csv", 'a,b\n1,"2'),  # a csv file with an open quote
    ],
)
def test_a_folder_datasets_cannot_read_isone_line(tmp_path, name, content):
    (tmp_path / "bad" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "bad" / name).write_text(content)
    with pytest.raises(UserError) as exc:
        load_source(HubSource(path=str(tmp_path / "bad")))
    text = one_line(exc)
    assert text.startswith(f"cannot load dataset {tmp_path / 'bad'} with `datasets`: ")
    assert "save_to_disk folder" in text


def test_a_broken_parquet_file_isone_line(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(UserError) as exc:
        load_source(HubSource(path=str(tmp_path / "x.parquet")))
    assert "cannot load dataset" in one_line(exc)


# --- the hub, never reached ---


def _no_call(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} called")

    return fail


def _hub(monkeypatch, info=None, load=None) -> list:
    """Replace the hub: `info` answers `dataset_info` (an exception is raised), `load` answers
    `load_dataset`; returns the load_dataset calls."""
    calls: list = []

    def dataset_info(self, repo_id, revision=None, **kwargs):
        if isinstance(info, BaseException):
            raise info
        return info

    def load_dataset(path, name=None, revision=None, **kwargs):
        calls.append({"path": path, "name": name, "revision": revision})
        if isinstance(load, BaseException):
            raise load
        return load

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _info(card_data=None, files=("README.md", "data/train-00000-of-00001.parquet")):
    """What `HfApi.dataset_info` answers: the commit, the card's metadata, the files."""
    siblings = [SimpleNamespace(rfilename=name) for name in files]
    return SimpleNamespace(sha=SHA, card_data=card_data, siblings=siblings)


def _not_found() -> Exception:
    import httpx2

    request = httpx2.Request("GET", "https://huggingface.co/api/datasets/org/name")
    response = httpx2.Response(404, request=request)
    return huggingface_hub.errors.RepositoryNotFoundError("Repository Not Found", response=response)


def test_an_unreachable_hub_isone_line(monkeypatch):
    calls = _hub(monkeypatch, info=ConnectionError("Max retries exceeded with url: /api/datasets"))
    with pytest.raises(UserError) as exc:
        load_source(HubSource(id="org/name"))
    text = one_line(exc)
    assert text.startswith("cannot reach the Hugging Face hub for hf://org/name (")
    assert "HF_HUB_OFFLINE=1" in text and "Max retries exceeded" in text
    assert calls == []  # nothing loaded without the commit


def test_a_load_that_cannot_reach_the_hub_isone_line(monkeypatch):
    info = _info(card_data=None)
    _hub(monkeypatch, info=info, load=ConnectionError("Couldn't reach 'org/name' on the Hub"))
    with pytest.raises(UserError) as exc:
        load_source(HubSource(id="org/name"))
    assert "cannot reach the Hugging Face hub for hf://org/name" in one_line(exc)


@pytest.mark.parametrize("where", ["info", "load"])
def test_a_dataset_not_on_the_hub_isone_line(monkeypatch, where):
    if where == "info":
        calls = _hub(monkeypatch, info=_not_found(), load=_tiny())
    else:
        error = datasets.exceptions.DatasetNotFoundError("Dataset 'org/name' doesn't exist")
        calls = _hub(monkeypatch, info=_info(card_data=None), load=error)
    with pytest.raises(UserError) as exc:
        load_source(HubSource(id="org/name", revision="v2"))
    text = one_line(exc)
    assert text.startswith("dataset hf://org/name@v2 not found on the hub")
    assert "huggingface-cli login" in text
    assert len(calls) == (where == "load")


def test_offline_without_the_dataset_cached_is_the_offline_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = _hub(
        monkeypatch,
        info=AssertionError("dataset_info called offline"),
        load=ConnectionError("Couldn't reach 'org/name' on the Hub (OfflineModeIsEnabled)"),
    )
    with pytest.raises(UserError) as exc:
        load_source(HubSource(id="org/name", revision="main"))
    text = one_line(exc)
    assert text.startswith("cannot load hf://org/name@main: HF_HUB_OFFLINE is set")
    assert calls == [{"path": "org/name", "name": None, "revision": "main"}]


def test_offline_a_cached_dataset_loads_at_the_revision_given(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hub(monkeypatch, info=AssertionError("dataset_info called offline"), load=_tiny())
    loaded = load_source(HubSource(id="org/name", revision="main"))
    assert loaded.revision == "main" and set(loaded.splits) == {"train", "test"}


def test_a_hub_load_records_the_commit_and_the_cards_licence(monkeypatch):
    card = huggingface_hub.DatasetCardData(license="cc-by-4.0")
    calls = _hub(monkeypatch, info=_info(card_data=card), load=_tiny())
    loaded = load_source(HubSource(id="org/name", revision="main", config="us"))
    assert loaded.revision == SHA
    assert calls == [{"path": "org/name", "name": "us", "revision": SHA}]  # pinned to the commit
    assert loaded.license == "cc-by-4.0"
    assert loaded.homepage == "https://huggingface.co/datasets/org/name"
    assert set(loaded.splits) == {"train", "test"} and len(loaded.splits["test"]) == 4
    assert loaded.extra["files"] == ["README.md", "data/train-00000-of-00001.parquet"]


def test_a_licence_list_on_the_card_is_joined(monkeypatch):
    card = huggingface_hub.DatasetCardData(license=["cc-by-4.0", "mit"])
    _hub(monkeypatch, info=_info(card_data=card), load=_tiny())
    assert load_source(HubSource(id="org/name")).license == "cc-by-4.0, mit"


def test_a_single_dataset_is_its_split(monkeypatch):
    _hub(monkeypatch, info=_info(card_data=None), load=_tiny(("test",))["test"])
    loaded = load_source(HubSource(id="org/name"))
    assert list(loaded.splits) == ["train"]  # a Dataset with no split name is train


def test_a_streaming_dataset_isone_line(monkeypatch):
    _hub(monkeypatch, info=_info(card_data=None), load=object())
    with pytest.raises(UserError) as exc:
        load_source(HubSource(id="org/name"))
    assert "not a dataset of splits" in one_line(exc)


def test_progress_bars_and_logging_are_restored(monkeypatch):
    _hub(monkeypatch, info=_info(card_data=None), load=_tiny())
    level = datasets.logging.get_verbosity()
    enabled = datasets.utils.logging.is_progress_bar_enabled()
    load_source(HubSource(id="org/name"))
    assert datasets.logging.get_verbosity() == level
    assert datasets.utils.logging.is_progress_bar_enabled() == enabled
    assert hub_load.offline() is False
