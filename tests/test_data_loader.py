import numpy as np
import pytest
import torch
from conftest import make_dataset

from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import open_store
from ultrabench_eval.data.loader import device_batches


@pytest.fixture
def store(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 11, "validation": 2, "test": 2})
    split = open_dataset(card, tmp_path / "data").splits["train"]
    return open_store(split, card.dataset, 24, tmp_path / "cache", progress=False)


def test_batches_cover_the_indices_in_order(store):
    indices = np.array([7, 8, 9, 0, 3, 4, 10])
    batches = list(device_batches(store, indices, 3, torch.device("cpu"), with_masks=True))
    assert [b.start for b in batches] == [0, 3, 6]
    got = torch.cat([b.images for b in batches])
    assert got.dtype == torch.uint8 and got.shape == (7, 1, 24, 24)
    np.testing.assert_array_equal(got[:, 0].numpy(), store.images[indices])
    np.testing.assert_array_equal(torch.cat([b.masks for b in batches])[:, 0], store.masks[indices])
    assert np.array_equal(np.concatenate([b.positions for b in batches]), indices)


def test_masks_only_when_asked(store):
    (batch,) = device_batches(store, np.arange(4), 8, torch.device("cpu"))
    assert batch.masks is None


def test_a_failing_read_surfaces_in_the_consumer(store):
    class Broken:
        def __init__(self, inner):
            self.images, self.masks = inner.images, inner.masks

        def __len__(self):
            return 11

    broken = Broken(store)
    broken.images = None  # reading from it fails in the background thread
    with pytest.raises(TypeError):
        list(device_batches(broken, np.arange(11), 4, torch.device("cpu")))
