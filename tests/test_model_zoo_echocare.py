"""EchoCare: the released file's layout, what is dropped, the pooling and the preprocessing."""

import pytest
import torch

from model_zoo.echocare import ECHOCARE_ARCH, EchoCare, echocare_encoder_state
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout


@pytest.fixture(scope="module")
def layout():
    return CheckpointLayout.load("echocare-encoder")


def test_full_size_model_is_monai_echocare(layout):
    model = EchoCare().meta_model()
    assert model.num_features == 2048
    assert [len(getattr(model, f"layers{i}")[0].blocks) for i in range(1, 5)] == [2, 2, 18, 2]
    # The manifest was dumped from MONAI: every used tensor, buffers included, is in the model.
    state = model.state_dict()
    assert sorted(layout.used_keys()) == sorted(state)
    assert layout.tensors["layers1.0.blocks.0.attn.relative_position_index"].dtype == "int64"
    params = sum(p.numel() for p in model.parameters())
    assert EchoCare().info.params == params == 120_221_688


@pytest.mark.parametrize(("depth", "depths"), [(1, (1, 1, 1, 1)), (2, (2, 2, 2, 2))])
def test_reduced_variants_match_reduced_layouts(layout, depth, depths):
    adapter = EchoCare().reduced(depth)
    model = adapter.meta_model()
    assert tuple(len(getattr(model, f"layers{i}")[0].blocks) for i in range(1, 5)) == depths
    assert sorted(layout.reduced(depth).used_keys()) == sorted(model.state_dict())


def test_mask_token_is_dropped_and_nothing_else():
    state = {"mask_token": torch.zeros(1, 1, 128)}
    state["patch_embed.proj.weight"] = torch.zeros(128, 3, 2, 2)
    state["layers1c.0.layer.conv1.conv.weight"] = torch.zeros(128, 128, 3, 3)
    state["layers1.0.blocks.0.attn.relative_position_index"] = torch.zeros(64, 64, dtype=torch.long)
    out = echocare_encoder_state(state, "file")
    assert sorted(out) == sorted(k for k in state if k != "mask_token")
    assert out["patch_embed.proj.weight"] is state["patch_embed.proj.weight"]


@pytest.mark.parametrize(
    "checkpoint",
    [
        {"state_dict": {"patch_embed.proj.weight": torch.zeros(1)}},  # wrapped: not the release
        {
            "cls_token": torch.zeros(1, 1, 768),
            "patch_embed.proj.weight": torch.zeros(768, 3, 16, 16),
        },
        {f"module.{k}": torch.zeros(1) for k in ("patch_embed.proj.weight", "mask_token")},
    ],
)
def test_other_files_are_rejected(checkpoint):
    with pytest.raises(UserError, match="not an EchoCare encoder"):
        echocare_encoder_state(checkpoint, "other.pth")


def test_official_file_loads_and_pools_the_last_normalised_map(layout, tmp_path):
    small = layout.reduced(1)
    path = small.build(tmp_path / small.file_name, seed=3)
    adapter = EchoCare().reduced(1).load(str(path))
    loaded = adapter.model.state_dict()
    saved = torch.load(path, weights_only=True)
    assert "mask_token" in saved and "mask_token" not in loaded
    for key, value in loaded.items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)

    maps = []
    adapter.model.register_forward_hook(lambda _m, _i, out: maps.append(out))
    images = torch.randint(0, 256, (1, 1, 40, 30), generator=torch.Generator().manual_seed(0))
    features = adapter.embed(images.to(torch.uint8))["avg"]
    last = maps[0][-1]
    assert tuple(last.shape) == (1, 2048, 8, 8)
    torch.testing.assert_close(features, last.mean(dim=(2, 3)))
    # Pooled after MONAI's channel LayerNorm: every position, hence the average, has mean 0.
    assert abs(float(features.mean())) < 1e-5
    # Tokens: that same map, row-major, and `avg` is their mean.
    maps.clear()
    tokens, grid = adapter.embed_tokens(images.to(torch.uint8))
    last = maps[0][-1]
    assert grid == adapter.token_grid == (8, 8) and tokens.shape == (1, 64, 2048)
    torch.testing.assert_close(tokens, last.permute(0, 2, 3, 1).reshape(1, 64, 2048))
    torch.testing.assert_close(tokens[0, 1], last[0, :, 0, 1])  # first row, second column
    assert adapter.mean_of_tokens == "avg"
    torch.testing.assert_close(tokens.mean(dim=1), features)


def test_full_size_token_grid_and_width():
    adapter = EchoCare()
    assert adapter.token_grid == (8, 8) and adapter.token_dim == 2048
    with torch.device("meta"):
        last = adapter.meta_model()(torch.empty(1, 3, 256, 256))[-1]
    assert tuple(last.shape) == (1, adapter.token_dim, *adapter.token_grid)
    assert adapter.reduced(1).token_grid == (8, 8)


def test_input_is_256_px_unit_range_grayscale_repeated():
    adapter = EchoCare()
    images = torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8).view(1, 1, 2, 2)
    x = adapter.preprocess(images.repeat_interleave(128, 2).repeat_interleave(128, 3))
    assert tuple(x.shape) == (1, 3, 256, 256)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # no mean/std shift
    torch.testing.assert_close(x[:, 0], x[:, 2], rtol=0, atol=0)
    assert adapter.input_spec.channels == ECHOCARE_ARCH["in_chans"]


def test_without_weights_the_user_is_told_where_to_get_the_file():
    with pytest.raises(UserError, match=r"--weights") as error:
        EchoCare().load()
    assert "echocare_encoder.pth" in str(error.value)
    assert "sharepoint.com" in str(error.value)
