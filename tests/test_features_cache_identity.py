"""The feature cache is keyed on what produced the features: the adapter's code, the pipeline's
code, the precision and the options that change numbers."""

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from test_features_extract import CountingConv

from ultrabench_eval.corruptions.views import View
from ultrabench_eval.features import cache_identity
from ultrabench_eval.features.extract import cached_features, feature_key
from ultrabench_eval.models.adapter import preprocess


@pytest.fixture
def store(tmp_path):
    from conftest import make_dataset

    from ultrabench_eval.data.dataset import open_dataset
    from ultrabench_eval.data.image_store import open_store

    card = make_dataset(tmp_path / "data", counts={"train": 8, "validation": 2, "test": 2})
    split = open_dataset(card, tmp_path / "data").splits["train"]
    return open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)


def _features(adapter, store, tmp_path):
    return cached_features(adapter, "toy", "train", store, tmp_path / "cache", batch_size=4)


def test_a_changed_preprocessing_misses_the_cache_and_the_same_code_hits(store, tmp_path):
    first = _features(CountingConv().load(), store, tmp_path)
    assert not first.from_cache
    assert _features(CountingConv().load(), store, tmp_path).from_cache  # same code: a hit

    class OtherNormalisation(CountingConv):  # same name, spec and weights; other code
        def preprocess(self, images):
            return preprocess(images, self.input_spec) * 0.5

    changed = _features(OtherNormalisation().load(), store, tmp_path)
    assert not changed.from_cache
    assert not np.allclose(changed.features["avg"], first.features["avg"])


def test_a_monkeypatched_method_misses_the_cache(store, tmp_path, monkeypatch):
    assert not _features(CountingConv().load(), store, tmp_path).from_cache

    def halved(self, images):
        return preprocess(images, self.input_spec) * 0.5

    monkeypatch.setattr(CountingConv, "preprocess", halved)
    assert not _features(CountingConv().load(), store, tmp_path).from_cache
    monkeypatch.undo()
    assert _features(CountingConv().load(), store, tmp_path).from_cache


def test_precision_and_speed_ups_are_in_the_key(monkeypatch):
    adapter = CountingConv().load()
    on_cpu = cache_identity.feature_fingerprint(adapter)
    assert cache_identity.extraction_identity(adapter)["precision"] == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    adapter.device = torch.device("cuda")  # where the features would be computed
    assert cache_identity.extraction_identity(adapter)["precision"] == "bf16"
    assert cache_identity.feature_fingerprint(adapter) != on_cpu
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert cache_identity.extraction_identity(adapter)["precision"] == "fp16"

    adapter = CountingConv().load()
    adapter.memory_format = torch.channels_last
    assert cache_identity.feature_fingerprint(adapter) != on_cpu
    compiled = CountingConv().load()
    compiled.forward_features = compiled.forward_features  # what optimise(compile=True) does
    assert cache_identity.extraction_options(compiled)["compile"]
    assert cache_identity.feature_fingerprint(compiled) != on_cpu


def test_the_pipeline_modules_exist_and_their_code_is_hashed():
    for name in cache_identity.PIPELINE_MODULES:
        assert Path(importlib.import_module(name).__file__).is_file()
    digests = cache_identity.module_digests(set(cache_identity.PIPELINE_MODULES))
    assert all(len(d) == 64 for d in digests.values())


def test_a_corrupted_view_is_keyed_on_its_corruptions_code():
    assert cache_identity.view_code_digest(View.clean()) == ""
    speckle = View.parse("speckle:3")
    digest = cache_identity.view_code_digest(speckle)
    assert len(digest) == 64
    key = feature_key(CountingConv().load(), "toy", "test", speckle)
    assert key.view_code == digest


def test_the_package_digest_needs_no_git(monkeypatch):
    import subprocess

    cache_identity.package_digest.cache_clear()

    def no_git(*args, **kwargs):
        raise OSError("no git here")

    monkeypatch.setattr(subprocess, "run", no_git)
    digest = cache_identity.package_digest()
    assert len(digest) == 64 and digest == cache_identity.package_digest()
