import numpy as np
import pytest
import torch
from conftest import make_dataset

from ultrabench_eval.adapter import Adapter, InputSpec, ModelInfo
from ultrabench_eval.dataset import open_dataset
from ultrabench_eval.errors import UserError
from ultrabench_eval.extract import cached_features, extract, resolve_device
from ultrabench_eval.image_store import open_store


class CountingConv(Adapter):
    """A tiny random conv net that counts its forward passes."""

    name = "counting-conv"
    poolings = ("avg",)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.GELU()).eval()
        self.calls = 0

    info = ModelInfo("conv", "none", "none", "MIT", "")
    input_spec = InputSpec(size=(40, 40))

    def load(self, weights=None):
        self._weights_id = "test"
        return self

    def forward_features(self, x):
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
