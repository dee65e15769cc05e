"""I-JEPA adapters: the release file's EMA `target_encoder` is what is loaded, the timm layout
gives the same features, and both equal an I-JEPA forward written out from the raw tensors."""

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.layouts import CheckpointLayout


def jepa_reference_features(
    state: dict, x: torch.Tensor, *, patch: int, heads: int, last: int = 1
) -> torch.Tensor:
    """Mean-pooled output of facebookresearch/ijepa's VisionTransformer.forward, computed from
    the checkpoint's own tensors with plain torch ops (independent of timm); with `last` > 1,
    the concatenated means of the last blocks' outputs, each through the final norm."""
    outputs = jepa_reference_layers(state, x, patch=patch, heads=heads)
    return torch.cat([t.mean(dim=1) for t in outputs[-last:]], dim=-1)


def jepa_reference_tokens(state: dict, x: torch.Tensor, *, patch: int, heads: int) -> torch.Tensor:
    """facebookresearch/ijepa's VisionTransformer.forward output [B, N, D]: every patch token
    of the last block through the final norm, row-major over the patch grid."""
    return jepa_reference_layers(state, x, patch=patch, heads=heads)[-1]


def jepa_reference_layers(
    state: dict, x: torch.Tensor, *, patch: int, heads: int
) -> list[torch.Tensor]:
    """Every block's output tokens [B, N, D], each through the final norm, from the checkpoint's
    own tensors with plain torch ops."""
    s = {k.removeprefix("module."): v.float() for k, v in state.items()}
    t = F.conv2d(x, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=patch)
    t = t.flatten(2).transpose(1, 2) + s["pos_embed"]
    b, n, d = t.shape
    depth = len({k.split(".")[1] for k in s if k.startswith("blocks.")})

    def norm(z: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(z, (d,), s[f"{name}.weight"], s[f"{name}.bias"], eps=1e-6)

    def linear(z: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(z, s[f"{name}.weight"], s[f"{name}.bias"])

    outputs = []
    for i in range(depth):
        p = f"blocks.{i}."
        qkv = linear(norm(t, p + "norm1"), p + "attn.qkv")
        q, k, v = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (d // heads) ** -0.5).softmax(dim=-1)
        t = t + linear((attn @ v).transpose(1, 2).reshape(b, n, d), p + "attn.proj")
        hidden = F.gelu(linear(norm(t, p + "norm2"), p + "mlp.fc1"))
        t = t + linear(hidden, p + "mlp.fc2")
        outputs.append(norm(t, "norm"))
    return outputs


def images(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 60, 52), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def vith_release(tmp_path_factory):
    """A depth-1 ViT-H/14 file in the official release layout, random weights."""
    layout = CheckpointLayout.load("ijepa-vith14-in1k-release").reduced(1)
    path = layout.build(tmp_path_factory.mktemp("ijepa") / layout.file_name, seed=3)
    return path, torch.load(path, weights_only=True)


def test_release_file_loads_the_target_encoder(vith_release):
    path, checkpoint = vith_release
    adapter = make_adapter("ijepa-vith14-in1k").reduced(1).load(str(path))
    batch = images()
    got = adapter.embed(batch)["mean"]
    x = adapter.preprocess(batch)
    target = jepa_reference_features(checkpoint["target_encoder"], x, patch=14, heads=16)
    context = jepa_reference_features(checkpoint["encoder"], x, patch=14, heads=16)
    torch.testing.assert_close(got, target, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, context, rtol=1e-2, atol=1e-4), "loaded the context encoder"
    assert adapter.default_pooling == "mean" and got.shape == (2, 1280)


def test_tokens_are_the_target_encoders_final_normed_tokens(vith_release):
    path, checkpoint = vith_release
    adapter = make_adapter("ijepa-vith14-in1k").reduced(1).load(str(path))
    batch = images()
    tokens, grid = adapter.embed_tokens(batch)
    x = adapter.preprocess(batch)
    want = jepa_reference_tokens(checkpoint["target_encoder"], x, patch=14, heads=16)
    assert grid == adapter.token_grid == (16, 16) and adapter.token_dim == 1280
    assert tokens.shape == want.shape == (2, 256, 1280)
    torch.testing.assert_close(tokens, want, rtol=1e-4, atol=1e-4)
    assert adapter.mean_of_tokens == "mean"
    torch.testing.assert_close(tokens.mean(dim=1), adapter.embed(batch)["mean"])


def test_last_four_layers_pooling(tmp_path):
    layout = CheckpointLayout.load("ijepa-vith14-timm").reduced(2)
    path = layout.build(tmp_path / layout.file_name, seed=4)
    adapter = make_adapter("ijepa-vith14-in22k").reduced(2).load(str(path))
    assert adapter.poolings == ("mean", "mean-last4")
    assert adapter.embed_dims == {"mean": 1280, "mean-last4": 2 * 1280}  # 4 layers at full size
    assert make_adapter("ijepa-vith14-in22k").embed_dims["mean-last4"] == 4 * 1280
    batch = images(1)
    got = adapter.embed(batch)
    x = adapter.preprocess(batch)
    state = layout.random_checkpoint(seed=4)
    want = jepa_reference_features(state, x, patch=14, heads=16, last=2)
    torch.testing.assert_close(got["mean-last4"], want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["mean"], want[:, 1280:], rtol=1e-4, atol=1e-5)


def test_timm_layout_gives_the_release_features(vith_release, tmp_path):
    path, checkpoint = vith_release
    flat = {k.removeprefix("module."): v for k, v in checkpoint["target_encoder"].items()}
    timm_file = tmp_path / "model.safetensors"
    save_file(flat, str(timm_file))
    batch = images()
    from_release = make_adapter("ijepa-vith14-in1k").reduced(1).load(str(path)).embed(batch)
    from_timm = make_adapter("ijepa-vith14-in1k").reduced(1).load(str(timm_file)).embed(batch)
    torch.testing.assert_close(from_timm["mean"], from_release["mean"], rtol=0, atol=0)


def test_checkpoint_without_target_encoder_is_an_error(vith_release, tmp_path):
    _, checkpoint = vith_release
    path = tmp_path / "context-only.pth.tar"
    torch.save({"encoder": checkpoint["encoder"], "predictor": checkpoint["predictor"]}, path)
    with pytest.raises(UserError, match="'target_encoder' state dict"):
        make_adapter("ijepa-vith14-in1k").reduced(1).load(str(path))


def test_another_vit_is_rejected(tmp_path):
    state = {
        k: torch.zeros(v.shape)
        for k, v in timm.create_model("test_vit", pretrained=False).state_dict().items()
    }
    path = tmp_path / "vit.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="not ViT encoder keys of I-JEPA .*cls_token"):
        make_adapter("ijepa-vith14-in1k").load(str(path))


@pytest.mark.parametrize(
    ("name", "timm_name", "params", "side", "width"),
    [
        ("ijepa-vith14-in1k", "vit_huge_patch14_gap_224", 630_762_240, 16, 1280),
        ("ijepa-vith14-in22k", "vit_huge_patch14_gap_224", 630_762_240, 16, 1280),
        ("ijepa-vitg16-in22k", "vit_giant_patch16_gap_224", 1_011_368_576, 14, 1408),
    ],
)
def test_full_size_architecture_is_the_published_one(name, timm_name, params, side, width):
    adapter = make_adapter(name)
    model = adapter.meta_model()
    assert adapter.info.params == params
    assert model.num_prefix_tokens == 0 and model.pos_embed.shape[1] == side * side
    assert adapter.token_grid == (side, side) and tuple(model.patch_embed.grid_size) == (side, side)
    assert adapter.token_dim == width == model.embed_dim
    assert adapter.reduced(1).token_grid == (side, side)
    with torch.device("meta"):
        reference = timm.create_model(timm_name, num_classes=0)
    assert model.blocks[0].attn.num_heads == reference.blocks[0].attn.num_heads == 16
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert adapter.input_spec.size == (224, 224)


def test_vitg_matches_the_reference_forward(tmp_path):
    layout = CheckpointLayout.load("ijepa-vitg16-timm").reduced(1)
    path = layout.build(tmp_path / layout.file_name, seed=5)
    adapter = make_adapter("ijepa-vitg16-in22k").reduced(1).load(str(path))
    batch = images(1)
    state = CheckpointLayout.load("ijepa-vitg16-timm").reduced(1).random_checkpoint(seed=5)
    x = adapter.preprocess(batch)
    want = jepa_reference_features(state, x, patch=16, heads=16)
    torch.testing.assert_close(adapter.embed(batch)["mean"], want, rtol=1e-4, atol=1e-5)
    tokens, grid = adapter.embed_tokens(batch)
    assert grid == (14, 14)
    want_tokens = jepa_reference_tokens(state, x, patch=16, heads=16)
    torch.testing.assert_close(tokens, want_tokens, rtol=1e-4, atol=1e-4)


def test_unreachable_download_is_a_user_error(monkeypatch):
    def offline(url, dst, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError, match="IN1K-vit.h.14-300e.pth.tar.*--weights FILE"):
        make_adapter("ijepa-vith14-in1k").reduced(1).load()


def test_pretrained_weights_are_downloaded_once(monkeypatch, vith_release):
    path, checkpoint = vith_release
    calls = []

    def fake_download(url, dst, **kwargs):
        calls.append(url)
        with open(dst, "wb") as out:
            out.write(path.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    first = make_adapter("ijepa-vith14-in1k").reduced(1).load()
    second = make_adapter("ijepa-vith14-in1k").reduced(1).load()
    assert calls == ["https://dl.fbaipublicfiles.com/ijepa/IN1K-vit.h.14-300e.pth.tar"]
    assert first.weights_id() == second.weights_id()
    assert first.weights_id().startswith(f"url:{calls[0]}:sha256=")
    batch = images()
    want = jepa_reference_features(
        checkpoint["target_encoder"], first.preprocess(batch), patch=14, heads=16
    )
    torch.testing.assert_close(second.embed(batch)["mean"], want, rtol=1e-4, atol=1e-5)
