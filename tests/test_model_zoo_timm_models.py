import pytest
import timm
import torch
from safetensors.torch import save_file

from model_zoo.timm_models import RandomViTSmall, TimmAdapter
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import MODELS


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(123)
    model = timm.create_model("test_vit", pretrained=False).eval()
    return model


def _images(n=2, size=64):
    return torch.randint(
        0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


def test_prefix_resolves_any_timm_model():
    adapter = MODELS.get("timm:test_vit")
    assert isinstance(adapter, TimmAdapter)
    assert adapter.input_spec.size == (160, 160)
    assert adapter.input_spec.mean == (0.5, 0.5, 0.5)
    assert adapter.poolings == ("cls", "mean")
    assert adapter.info.params == sum(p.numel() for p in timm.create_model("test_vit").parameters())


def test_unknown_timm_model():
    with pytest.raises(UserError, match="unknown timm model 'no_such_net'"):
        MODELS.get("timm:no_such_net")


def test_local_safetensors_gives_the_reference_features(tmp_path, reference):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    adapter = TimmAdapter("timm:test_vit").load(str(path))
    images = _images()
    out = adapter.embed(images)
    x = adapter.preprocess(images)
    with torch.inference_mode():
        tokens = reference.forward_features(x)
    torch.testing.assert_close(out["cls"], tokens[:, 0])
    torch.testing.assert_close(out["mean"], tokens[:, reference.num_prefix_tokens :].mean(1))
    assert adapter.weights_id().startswith("file:sha256=")


def test_wrapped_and_prefixed_checkpoint_loads(tmp_path, reference):
    path = tmp_path / "ckpt.pth"
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
        path,
    )
    adapter = TimmAdapter("timm:test_vit").load(str(path))
    assert adapter.loaded


def test_missing_or_mis_shaped_keys_are_errors(tmp_path, reference):
    state = dict(reference.state_dict())
    state.pop("cls_token")
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="1 missing keys .*cls_token"):
        TimmAdapter("timm:test_vit").load(str(path))
    state = dict(reference.state_dict())
    state["head.weight"] = torch.zeros(10, state["head.weight"].shape[1])
    torch.save(state, path)
    with pytest.raises(UserError, match="other shapes .*head.weight"):
        TimmAdapter("timm:test_vit").load(str(path))


def test_unreachable_hub_is_a_user_error(monkeypatch):
    import huggingface_hub.constants

    # offline mode, as on a machine without hub access (read at import, so patched here)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="cannot fetch pretrained weights .*--weights"):
        TimmAdapter("timm:test_vit").load()


def test_random_vit_is_fixed_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    first = RandomViTSmall().load()
    assert torch.equal(torch.random.get_rng_state(), before)
    second = RandomViTSmall().load()
    assert first.weights_id() == second.weights_id()
    assert first.fingerprint() == second.fingerprint()
    images = _images(2, 48)
    torch.testing.assert_close(first.embed(images)["cls"], second.embed(images)["cls"])
    assert first.embed(images)["cls"].shape == (2, 384)
