import json
import os

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.label_store import open_label_store
from ultrabench_eval.data.task_card import TaskCard
from ultrabench_eval.features import cache_admin, token_cache
from ultrabench_eval.features.token_cache import TokenKey, TokenWriter


@pytest.fixture
def filled_cache(tmp_path, monkeypatch, capsys):
    card = make_dataset(tmp_path / "data", counts={"train": 6, "validation": 2, "test": 2})
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(f"name: toy\ndataset: {card.dataset}\nclasses: [a, b]\n")
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    from ultrabench_eval.core.registry import TASKS

    monkeypatch.setattr(TASKS, "_populated", False)
    cache = tmp_path / "cache"
    for model in ("pixels", "hog"):
        assert (
            main(
                [
                    "extract",
                    "--model",
                    model,
                    "--tasks",
                    "toy",
                    "--data",
                    str(tmp_path / "data"),
                    "--cache",
                    str(cache),
                    "--no-progress",
                ]
            )
            == 0
        )
    capsys.readouterr()
    return cache


def test_extract_then_list(filled_cache, capsys):
    found = cache_admin.entries(filled_cache)
    kinds = sorted((e.kind, e.name) for e in found)
    assert kinds.count(("features", "pixels")) == 3 and kinds.count(("features", "hog")) == 3
    # pixels (32 px, area) and hog (128 px, bilinear) each have their own stores
    assert kinds.count(("images", "toy_v1")) == 6
    assert main(["cache", "ls", "--cache", str(filled_cache)]) == 0
    out = capsys.readouterr().out
    assert "toy/train/clean [raw 1024]" in out and "train 32px area" in out
    assert "12 entries" in out


def test_rm_by_model_and_dry_run(filled_cache, capsys):
    assert main(["cache", "rm", "--cache", str(filled_cache), "--model", "hog", "--dry-run"]) == 0
    assert "3 entries, would free" in capsys.readouterr().out
    assert len(cache_admin.entries(filled_cache)) == 12
    assert main(["cache", "rm", "--cache", str(filled_cache), "--model", "hog"]) == 0
    left = cache_admin.entries(filled_cache)
    assert not [e for e in left if e.name == "hog"] and len(left) == 9


def test_rm_images_and_everything(filled_cache):
    found = cache_admin.entries(filled_cache)
    assert {e.kind for e in cache_admin.select(found, images=True)} == {"images"}
    assert cache_admin.select(found, datasets=["other_v1"]) == []
    cache_admin.remove(cache_admin.select(found, everything=True))
    assert cache_admin.entries(filled_cache) == []


def test_rm_needs_a_filter(filled_cache):
    with pytest.raises(UserError, match="say what to remove"):
        cache_admin.select(cache_admin.entries(filled_cache))


# -- tokens and label stores ------------------------------------------------------------------

TOKEN_IDS = [f"{i}.png" for i in range(4)]
TOKEN_SHAPE = (4, 6, 3)  # 4 images, 6 tokens of 3 dims (a 2 x 3 grid)


def _tokens(cache, model, task, split, *, rows=None, dtype="float16"):
    """One token file of `model`; with `rows`, a run killed after that many rows (a partial
    file whose lock nobody holds)."""
    key = TokenKey(model, "f" * 16, task, split, dtype=dtype)
    with token_cache.entry_lock(key, cache, print):
        writer = TokenWriter.open(key, cache, TOKEN_IDS, "content", "code", TOKEN_SHAPE, (2, 3))
        done = TOKEN_SHAPE[0] if rows is None else rows
        writer.write(np.ones((done, *TOKEN_SHAPE[1:]), dtype))
        if rows is None:
            writer.finish()
        else:
            writer.checkpoint()
    return key


def _seg_task(root):
    """A 2-class segmentation folder: 2 images of 8 x 8 per split, masks 0/255."""
    folder = root / "seg_v1"
    (folder / "images").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        records = []
        for i in range(2):
            stem = f"{split}_{i}.png"
            mask = np.zeros((8, 8), np.uint8)
            mask[2:6, 2:6] = 255
            Image.fromarray(np.full((8, 8), 100, np.uint8)).save(folder / "images" / stem)
            Image.fromarray(mask).save(folder / "images" / f"mask_{stem}")
            records.append({"image": f"images/{stem}", "lesion_mask": f"images/mask_{stem}"})
        (folder / f"{split}.json").write_text(json.dumps(records))
    return TaskCard(
        name="seg",
        dataset="seg_v1",
        classes=("background", "lesion"),
        kind="segmentation",
        mask_field="lesion_mask",
        mask_values=(0, 255),
    )


@pytest.fixture
def token_cache_dir(tmp_path):
    cache = tmp_path / "cache"
    _tokens(cache, "timm:vit", "seg", "train")
    _tokens(cache, "timm:vit", "seg", "test", dtype="float32")
    _tokens(cache, "timm:vit", "seg", "validation", rows=2)  # killed midway
    _tokens(cache, "hog", "other", "train")
    card = _seg_task(tmp_path / "data")
    dataset = open_dataset(card, tmp_path / "data")
    for split in ("train", "test"):
        open_label_store(dataset.splits[split], card, cache, size=16, progress=False)
    return cache


def _by_kind(found, kind):
    return [e for e in found if e.kind == kind]


def test_tokens_are_listed_with_their_dtype_shape_and_size(token_cache_dir):
    tokens = _by_kind(cache_admin.entries(token_cache_dir), "tokens")
    described = sorted((e.name, e.detail["split"], e.detail["dtype"], e.what) for e in tokens)
    assert described == [
        (
            "hog",
            "train",
            "float16",
            f"other/train/clean float16 [6 tokens x 3, grid 2x3] {'f' * 16}",
        ),
        (
            "timm:vit",
            "test",
            "float32",
            f"seg/test/clean float32 [6 tokens x 3, grid 2x3] {'f' * 16}",
        ),
        (
            "timm:vit",
            "train",
            "float16",
            f"seg/train/clean float16 [6 tokens x 3, grid 2x3] {'f' * 16}",
        ),
        (
            "timm:vit",
            "validation",
            "float16",
            "seg/validation/clean float16, unfinished: 2 of 4 rows",
        ),
    ]
    [test] = [e for e in tokens if e.detail["split"] == "test"]
    data, sidecar = test.paths
    assert data.name == "clean.float32.npy" and sidecar.name == "clean.float32.json"
    # the whole file on disk: header + 4 x 6 x 3 float32, and its sidecar
    assert test.bytes == data.stat().st_size + sidecar.stat().st_size
    assert data.stat().st_size >= 4 * 6 * 3 * 4
    assert test.detail["images"] == 4 and test.detail["grid"] == [2, 3]
    [partial] = [e for e in tokens if e.detail["unfinished"]]
    assert [p.name for p in partial.paths] == [
        "clean.float16.partial.npy",
        "clean.float16.partial.json",
    ]


def test_rm_by_model_takes_its_tokens_partial_files_locks_and_empty_folders(token_cache_dir):
    found = cache_admin.entries(token_cache_dir)
    chosen = cache_admin.select(found, models=["timm:vit"])
    assert len(chosen) == 3 and {e.kind for e in chosen} == {"tokens"}
    size = sum(e.bytes for e in chosen)
    assert size > 0 and cache_admin.remove(chosen) == size
    assert not (token_cache_dir / "tokens" / f"timm_vit-{'f' * 16}").exists()
    left = cache_admin.entries(token_cache_dir)
    assert sorted((e.kind, e.name) for e in left) == [
        ("labels", "seg_v1"),
        ("labels", "seg_v1"),
        ("tokens", "hog"),
    ]
    hog = token_cache_dir / "tokens" / f"hog-{'f' * 16}" / "other" / "train"
    assert sorted(p.name for p in hog.iterdir()) == [
        ".clean.float16.lock",
        "clean.float16.json",
        "clean.float16.npy",
    ]


def test_rm_by_task_takes_tokens_and_features_filters_leave_stores(token_cache_dir):
    found = cache_admin.entries(token_cache_dir)
    assert {e.name for e in cache_admin.select(found, tasks=["other"])} == {"hog"}
    assert cache_admin.select(found, models=["hog"], tasks=["seg"]) == []
    stores = cache_admin.select(found, images=True)
    assert {e.kind for e in stores} == {"labels"} and len(stores) == 2
    assert cache_admin.select(found, datasets=["seg_v1"]) == stores


def test_label_stores_are_listed_and_removed_like_image_stores(token_cache_dir):
    labels = _by_kind(cache_admin.entries(token_cache_dir), "labels")
    assert sorted(e.what for e in labels) == ["test 16px labels", "train 16px labels"]
    assert all(e.name == "seg_v1" and e.detail["images"] == 2 for e in labels)
    # a build a killed run left behind (no host, old): listed as an unfinished label store
    stale = token_cache_dir / "images" / "seg_v1" / ".validation-labels-16px.tmp-12345"
    stale.mkdir()
    os.utime(stale, (1, 1))
    labels = _by_kind(cache_admin.entries(token_cache_dir), "labels")
    assert "validation 16px labels, unfinished build" in [e.what for e in labels]
    cache_admin.remove(cache_admin.select(cache_admin.entries(token_cache_dir), images=True))
    assert _by_kind(cache_admin.entries(token_cache_dir), "labels") == []
    assert list((token_cache_dir / "images" / "seg_v1").iterdir()) == []


def test_a_partial_file_being_filled_is_neither_listed_nor_removed(token_cache_dir):
    key = TokenKey("timm:vit", "f" * 16, "seg", "validation")
    partial, _ = key.paths(token_cache_dir, "partial")
    with token_cache.entry_lock(key, token_cache_dir, print):
        found = cache_admin.entries(token_cache_dir)
        assert not [e for e in found if e.kind == "tokens" and e.detail["unfinished"]]
        cache_admin.remove(cache_admin.select(found, everything=True))
        assert partial.is_file() and key.lock_path(token_cache_dir).is_file()
    # once the writer is gone, what it left is listed, and goes with its lock
    [left] = cache_admin.entries(token_cache_dir)
    assert left.detail["unfinished"] and left.detail["done"] == 2
    cache_admin.remove([left])
    assert list((token_cache_dir / "tokens").iterdir()) == []


def test_a_token_file_without_its_sidecar_is_named_by_its_path(token_cache_dir):
    key = TokenKey("timm:vit", "f" * 16, "seg", "train")
    data, sidecar = key.paths(token_cache_dir)
    sidecar.write_text("{damaged")
    [entry] = [e for e in cache_admin.entries(token_cache_dir) if e.paths[0] == data]
    assert entry.name == "timm_vit" and entry.detail["task"] == "seg"
    assert entry.what == f"seg/train/clean float16 [?] {'f' * 16}"
    # the model's own name (`timm:vit`) finds it, as it finds the entries whose sidecar is whole
    chosen = cache_admin.select(cache_admin.entries(token_cache_dir), models=["timm:vit"])
    assert entry in chosen and len(chosen) == 3


def test_cli_dry_run_lists_label_stores_with_images(token_cache_dir, capsys):
    argv = ["cache", "rm", "--cache", str(token_cache_dir), "--images", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(labels seg_v1)" in out and "2 entries, would free" in out
    assert len(cache_admin.entries(token_cache_dir)) == 6


def test_hf_folders_are_listed_and_removed_by_dataset(tmp_path, monkeypatch):
    """A Hugging Face dataset written out as a task folder is an `hf` entry named by its
    folder, removed with --dataset (or --images) and not by a model or task filter; a write a
    killed run left behind is listed as unfinished."""
    import datasets

    from ultrabench_eval.data.hub.materialise import hub_task
    from ultrabench_eval.data.hub.source import HubSource

    card = make_dataset(tmp_path / "data", counts={"train": 6, "validation": 2, "test": 2})
    folder = tmp_path / "data" / card.dataset
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
    )
    splits = {}
    for split in ("train", "validation", "test"):
        rows = json.loads((folder / f"{split}.json").read_text())
        data = {
            "image": [{"bytes": (folder / r["image"]).read_bytes(), "path": None} for r in rows],
            "label": [r["label"] for r in rows],
        }
        splits[split] = datasets.Dataset.from_dict(data, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "ds"))
    source = HubSource(path=str(tmp_path / "ds"))
    cache = tmp_path / "cache"
    hf_card, root, _ = hub_task(
        TaskCard(name="t", dataset=source.slug, classes=("a", "b"), hf=source), cache
    )
    import socket

    dead = root.parent / f".{root.name}x.tmp-{socket.gethostname()}-{2**22 + 12345}"  # no pid
    dead.mkdir()

    found = [e for e in cache_admin.entries(cache) if e.kind == "hf"]
    assert [e.detail["unfinished"] for e in found] == [False, True]
    assert found[0].name == hf_card.dataset and found[0].detail["images"] == 10
    assert "(train/val/test 6/2/2)" in found[0].what
    assert cache_admin.select(found, models=["pixels"]) == []
    chosen = cache_admin.select(found, datasets=[hf_card.dataset])
    assert chosen == found
    cache_admin.remove(chosen)
    assert not (cache / "hf" / hf_card.dataset).exists() and (cache / "hf").is_dir()
