import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset

from ultrabench_eval.core.device import resolve_device
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import open_store
from ultrabench_eval.features.extract import cached_features, extract, feature_key
from ultrabench_eval.features.feature_cache import CacheKey
from ultrabench_eval.models.adapter import Adapter, InputSpec, ModelInfo


class Interrupted(Exception):
    pass


class CountingConv(Adapter):
    """A tiny random conv net that counts its forward passes."""

    name = "counting-conv"
    poolings = ("avg",)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.GELU()).eval()
        self.calls = 0
        self.dies_at: int | None = None  # a kill in the middle of a run, code unchanged

    info = ModelInfo("conv", "none", "none", "MIT", "")
    input_spec = InputSpec(size=(40, 40))

    def load(self, weights=None):
        self._weights_id = "test"
        return self

    def forward_features(self, x):
        if self.calls == self.dies_at:
            raise Interrupted
        self.calls += 1
        return {"avg": self.net(x).mean(dim=(2, 3))}


@pytest.fixture
def store(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 20, "validation": 2, "test": 2})
    split = open_dataset(card, tmp_path / "data").splits["train"]
    return open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)


def test_features_do_not_depend_on_batch_size(store):
    adapter = CountingConv().load()
    one = extract(adapter, store, batch_size=1)["avg"]
    many = extract(adapter, store, batch_size=64)["avg"]
    assert one.shape == (20, 8)
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_warm_cache_runs_no_forward_pass(store, tmp_path):
    adapter = CountingConv().load()
    cold = cached_features(adapter, "toy", "train", store, tmp_path / "cache", batch_size=7)
    assert not cold.from_cache and adapter.calls == 3
    warm = cached_features(adapter, "toy", "train", store, tmp_path / "cache", batch_size=7)
    assert warm.from_cache and adapter.calls == 3
    np.testing.assert_array_equal(warm.features["avg"], cold.features["avg"])


def test_asking_for_a_missing_gpu_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_killed_run_resumes_from_the_batches_done(store, tmp_path):
    reference = extract(CountingConv().load(), store, batch_size=4)["avg"]
    dies = CountingConv().load()
    dies.dies_at = 3
    cache = tmp_path / "cache"
    with pytest.raises(Interrupted):
        cached_features(dies, "toy", "train", store, cache, batch_size=4, checkpoint_seconds=0.0)
    survivor = CountingConv().load()
    resumed = cached_features(survivor, "toy", "train", store, cache, batch_size=4)
    assert survivor.calls == 2  # 20 images in batches of 4: three were done before the kill
    np.testing.assert_allclose(resumed.features["avg"], reference, rtol=1e-6, atol=1e-7)
    tensors, _ = feature_key(survivor, "toy", "train", View.clean()).paths(cache, "partial")
    assert tensors.parent.is_dir() and not tensors.exists(), (
        "the partial file goes once the final one is written"
    )


def test_changed_split_invalidates_the_cached_file(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 12, "validation": 2, "test": 2})
    adapter = CountingConv().load()

    def features():
        split = open_dataset(card, tmp_path / "data").splits["train"]
        store = open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)
        return cached_features(adapter, "toy", "train", store, tmp_path / "cache")

    assert not features().from_cache and features().from_cache
    train_json = tmp_path / "data" / card.dataset / "train.json"
    records = json.loads(train_json.read_text())
    train_json.write_text(json.dumps(records[:-1]))  # an image removed
    again = features()
    assert not again.from_cache and again.features["avg"].shape[0] == 11


def _write_entry(cache_root: str, value: float, rounds: int) -> None:
    from ultrabench_eval.features import feature_cache

    key = CacheKey("m", "f" * 16, "t", "train")
    ids = [f"{i}.png" for i in range(50)]
    features = {"cls": np.full((50, 64), value, np.float32)}
    for _ in range(rounds):
        feature_cache.save(key, Path(cache_root), features, ids, "hash")


def test_two_processes_writing_one_entry_leave_a_valid_file(tmp_path):
    from ultrabench_eval.features import feature_cache

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_entry, args=(str(tmp_path), 1.0, 30)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    key = CacheKey("m", "f" * 16, "t", "train")
    loaded = feature_cache.load(key, tmp_path, [f"{i}.png" for i in range(50)], "hash")
    assert loaded is not None and np.all(loaded["cls"] == 1.0)
    assert sorted(p.name for p in key.folder(tmp_path).iterdir()) == [
        "clean.json",
        "clean.safetensors",
    ]


def test_store_pipeline_matches_a_hand_written_pil_loop(tmp_path):
    """The speed is not bought with other inputs: PIL decode + timm transforms (resize without
    crop, to tensor, normalise) give the same features as the store and device pipeline."""
    from PIL import Image
    from timm.data import create_transform

    from model_zoo.timm_models import RandomViTSmall
    from ultrabench_eval.data.synth import write_task
    from ultrabench_eval.features.stores import store_resize

    folder = write_task("synth-lesion", tmp_path / "data", num_images=12, image_size=96)
    card = TASKS.get("synth-lesion")
    split = open_dataset(card, tmp_path / "data").splits["test"]
    adapter = RandomViTSmall().load()
    size, interpolation = store_resize(adapter, None)
    store = open_store(
        split, card.dataset, size, tmp_path / "cache", interpolation=interpolation, progress=False
    )
    ours = extract(adapter, store, batch_size=3)["cls"]

    spec = adapter.input_spec
    transform = create_transform(
        input_size=(3, *spec.size),
        interpolation=spec.interpolation,
        mean=spec.mean,
        std=spec.std,
        crop_pct=1.0,
        crop_mode="squash",
    )
    batch = torch.stack(
        [transform(Image.open(folder / r.image).convert("RGB")) for r in split.records]
    )
    with torch.inference_mode():
        theirs = adapter.forward_features(batch)["cls"].numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)
    assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(theirs).max()
