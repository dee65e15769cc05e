import pytest
import torch

from model_zoo.classical import PixelsAdapter
from ultrabench_eval.models.adapter import InputSpec, ModelInfo, preprocess, token_poolings


def test_preprocess_resizes_repeats_and_normalises():
    images = torch.full((2, 1, 10, 12), 255, dtype=torch.uint8)
    spec = InputSpec(size=(8, 8), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = preprocess(images, spec)
    assert x.shape == (2, 3, 8, 8)
    torch.testing.assert_close(x, torch.full_like(x, 2.0))


def test_input_spec_validation():
    with pytest.raises(ValueError):
        InputSpec(interpolation="lanczos")
    with pytest.raises(ValueError):
        InputSpec(channels=1)


def test_embed_checks_its_input():
    adapter = PixelsAdapter().load()
    with pytest.raises(ValueError, match="uint8"):
        adapter.embed(torch.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        adapter.embed(torch.zeros((1, 3, 8, 8), dtype=torch.uint8))


def test_fingerprint_follows_weights_and_spec():
    class Other(PixelsAdapter):
        @property
        def input_spec(self):
            return InputSpec(size=(16, 16), mean=(0.0,), std=(1.0,), channels=1)

    a = PixelsAdapter().load()
    assert a.fingerprint() == PixelsAdapter().load().fingerprint()
    assert a.fingerprint() != Other().load().fingerprint()
    b = PixelsAdapter().load()
    b._weights_id = "other"
    assert a.fingerprint() != b.fingerprint()
    with pytest.raises(RuntimeError, match="not loaded"):
        PixelsAdapter().fingerprint()


def test_token_poolings():
    tokens = torch.arange(24.0).view(1, 4, 6)
    out = token_poolings(tokens, 2)
    torch.testing.assert_close(out["cls"], tokens[:, 0])
    torch.testing.assert_close(out["mean"], tokens[:, 2:].mean(1))
    assert set(token_poolings(tokens, 0)) == {"mean"}


def test_model_info_defaults():
    info = ModelInfo("a", "b", "c", "d", "e")
    assert info.params is None and info.extra == {}


def test_channels_last_keeps_the_features():
    from model_zoo.timm_models import TimmAdapter

    adapter = TimmAdapter("timm:test_convnext").load_random(0)
    images = torch.randint(0, 256, (2, 1, 40, 40), dtype=torch.uint8)
    before = adapter.embed(images)["avg"]
    adapter.optimise(channels_last=True)
    assert adapter.preprocess(images).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(adapter.embed(images)["avg"], before, rtol=1e-4, atol=1e-5)


def test_load_random_is_fixed_and_leaves_the_global_rng_alone():
    from model_zoo.timm_models import TimmAdapter

    torch.manual_seed(3)
    state = torch.random.get_rng_state()
    a = TimmAdapter("timm:test_vit").load_random(1)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = TimmAdapter("timm:test_vit").load_random(1)
    c = TimmAdapter("timm:test_vit").load_random(2)
    assert a.weights_id() == b.weights_id() != c.weights_id()
