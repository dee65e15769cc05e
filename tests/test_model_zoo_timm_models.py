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


def test_vit_tokens_are_the_reference_patch_tokens_after_the_norm(tmp_path, reference):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    adapter = TimmAdapter("timm:test_vit").load(str(path))
    images = _images()
    tokens, grid = adapter.embed_tokens(images)
    with torch.inference_mode():
        x = adapter.preprocess(images)
        want = reference.forward_features(x)[:, reference.num_prefix_tokens :]
    assert grid == adapter.token_grid == tuple(reference.patch_embed.grid_size) == (10, 10)
    assert adapter.token_dim == 64 and tokens.shape == (2, 100, 64)
    torch.testing.assert_close(tokens, want)
    assert adapter.mean_of_tokens == "mean"
    # a dynamic-size ViT gets its grid from the input
    assert reference.dynamic_img_size
    assert adapter.forward_tokens(torch.zeros(1, 3, 96, 128)).grid == (6, 8)


def test_full_size_vit_grid_and_width():
    adapter = RandomViTSmall()
    assert adapter.token_grid == (14, 14) and adapter.token_dim == 384  # 224 px / 16
    assert adapter.mean_of_tokens == "mean"
    large = TimmAdapter("timm:vit_small_patch14_reg4_dinov2")  # 4 registers + CLS dropped
    assert large.token_grid == (37, 37) and large.token_dim == 384  # 518 px / 14


def _random_file(tmp_path, model_name, seed=0):
    # a weights file in timm's layout, as a user passes with --weights
    torch.manual_seed(seed)
    path = tmp_path / f"{model_name}.pth"
    torch.save(timm.create_model(model_name, pretrained=False).state_dict(), path)
    return path


def test_cnn_tokens_are_the_final_feature_map(tmp_path):
    from ultrabench_eval.models.testing import check_tokens

    adapter = TimmAdapter("timm:resnet18")
    assert adapter.token_grid == (7, 7) and adapter.token_dim == 512  # 224 px / 32
    adapter.load(str(_random_file(tmp_path, "resnet18")))
    assert adapter.mean_of_tokens == "avg"  # resnet's pre-logits: global average pooling
    check_tokens(adapter)
    images = _images(2, 224)
    tokens, grid = adapter.embed_tokens(images)
    with torch.inference_mode():
        feature_map = adapter.model.forward_features(adapter.preprocess(images))
    assert tuple(feature_map.shape) == (2, 512, 7, 7) and grid == (7, 7)
    torch.testing.assert_close(tokens, feature_map.flatten(2).transpose(1, 2))
    assert torch.equal(tokens.reshape(2, 7, 7, 512)[:, 0, 3], feature_map[:, :, 0, 3])


def test_head_that_norms_after_pooling_is_not_the_mean_of_tokens(tmp_path):
    # ConvNeXt's head pools, then applies a LayerNorm: its "avg" is not the tokens' mean
    adapter = TimmAdapter("timm:test_convnext").load(str(_random_file(tmp_path, "test_convnext")))
    assert adapter.mean_of_tokens is None
    tokens, grid = adapter.embed_tokens(_images())
    assert grid == adapter.token_grid == (5, 5) and tokens.shape == (2, 25, adapter.token_dim)


def test_channels_last_maps_are_read_as_nhwc(tmp_path):
    from ultrabench_eval.models.testing import check_tokens

    adapter = TimmAdapter("timm:test_mambaout")  # forward_features gives [B, H, W, C]
    assert adapter.token_grid == (5, 5) and adapter.token_dim == 64
    adapter.load(str(_random_file(tmp_path, "test_mambaout")))
    check_tokens(adapter)
    images = _images()
    tokens, _ = adapter.embed_tokens(images)
    with torch.inference_mode():
        feature_map = adapter.model.forward_features(adapter.preprocess(images))
    assert tuple(feature_map.shape) == (2, 5, 5, 64)
    torch.testing.assert_close(tokens, feature_map.reshape(2, 25, 64))
