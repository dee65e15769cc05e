"""RAD-DINO: the transformers Dinov2Model layout, mapped onto timm, gives what a plain
re-computation of transformers' Dinov2 forward gives; the dinov2-layout file gives the same; the
mapping round-trips; preprocessing and poolings as documented."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from model_zoo.rad_dino import rad_dino_state
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.layouts import CheckpointLayout

DEPTH = 2
WIDTH, HEADS = 768, 12


def _hf_state(seed: int = 1) -> dict:
    state = CheckpointLayout.load("rad-dino-hf").reduced(DEPTH).random_checkpoint(seed)
    for key, value in state.items():
        if key.endswith(("norm1.weight", "norm2.weight")) or key == "layernorm.weight":
            state[key] = value + 1.0
        elif key.endswith("lambda1"):
            state[key] = value * 20
    return state


def _reference_forward(state: dict, x: torch.Tensor) -> torch.Tensor:
    """transformers' Dinov2Model forward at its native 518 px, written out with torch ops
    (separate query/key/value, layer scale, pre-norm blocks, final layernorm)."""
    batch = x.shape[0]
    head = WIDTH // HEADS

    def ln(h, name):
        return F.layer_norm(h, (WIDTH,), state[f"{name}.weight"], state[f"{name}.bias"], 1e-6)

    def lin(h, name):
        return F.linear(h, state[f"{name}.weight"], state[f"{name}.bias"])

    patches = F.conv2d(
        x,
        state["embeddings.patch_embeddings.projection.weight"],
        state["embeddings.patch_embeddings.projection.bias"],
        stride=14,
    )
    h = torch.cat(
        [state["embeddings.cls_token"].expand(batch, -1, -1), patches.flatten(2).transpose(1, 2)],
        dim=1,
    )
    h = h + state["embeddings.position_embeddings"]
    for i in range(DEPTH):
        p = f"encoder.layer.{i}."
        n = ln(h, p + "norm1")
        q, k, v = (
            lin(n, f"{p}attention.attention.{part}").view(batch, -1, HEADS, head).transpose(1, 2)
            for part in ("query", "key", "value")
        )
        weights = torch.softmax(q @ k.transpose(-1, -2) * head**-0.5, dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(batch, -1, WIDTH)
        h = h + lin(attended, p + "attention.output.dense") * state[p + "layer_scale1.lambda1"]
        mlp = lin(F.gelu(lin(ln(h, p + "norm2"), p + "mlp.fc1")), p + "mlp.fc2")
        h = h + mlp * state[p + "layer_scale2.lambda1"]
    return ln(h, "layernorm")


def _to_dinov2_layout(hf: dict) -> dict:
    """The same weights under facebookresearch/dinov2 names (backbone_compatible.safetensors)."""
    out = {
        "cls_token": hf["embeddings.cls_token"],
        "mask_token": hf["embeddings.mask_token"],
        "pos_embed": hf["embeddings.position_embeddings"],
        "patch_embed.proj.weight": hf["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": hf["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": hf["layernorm.weight"],
        "norm.bias": hf["layernorm.bias"],
    }
    for i in range(DEPTH):
        p, b = f"encoder.layer.{i}.", f"blocks.{i}."
        for param in ("weight", "bias"):
            out[f"{b}attn.qkv.{param}"] = torch.cat(
                [hf[f"{p}attention.attention.{n}.{param}"] for n in ("query", "key", "value")]
            )
            out[f"{b}attn.proj.{param}"] = hf[f"{p}attention.output.dense.{param}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{b}{name}.{param}"] = hf[f"{p}{name}.{param}"]
        out[b + "ls1.gamma"] = hf[p + "layer_scale1.lambda1"]
        out[b + "ls2.gamma"] = hf[p + "layer_scale2.lambda1"]
    return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rad-dino")
    hf = _hf_state()
    paths = [folder / "model.safetensors", folder / "backbone_compatible.safetensors"]
    for path, tensors in zip(paths, (hf, _to_dinov2_layout(hf)), strict=True):
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return hf, [make_adapter("rad-dino").reduced(DEPTH).load(str(p)) for p in paths]


def test_hf_layout_matches_a_plain_dinov2_forward(loaded):
    hf, (adapter, _) = loaded
    images = torch.randint(0, 256, (1, 1, 60, 50), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    x = adapter.preprocess(images)
    with torch.inference_mode():
        reference = _reference_forward(hf, x)
    out = adapter.embed(images)
    torch.testing.assert_close(out["cls"], reference[:, 0], rtol=1e-4, atol=1e-4)  # pooler_output
    torch.testing.assert_close(out["mean"], reference[:, 1:].mean(1), rtol=1e-4, atol=1e-4)


def test_tokens_are_the_reference_patch_tokens(loaded):
    """Patch tokens = transformers' last_hidden_state[:, 1:] (after the final layernorm),
    row-major on the 37x37 grid; their mean is `mean`."""
    hf, (adapter, _) = loaded
    images = torch.randint(0, 256, (1, 1, 60, 50), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    tokens, grid = adapter.embed_tokens(images)
    with torch.inference_mode():
        reference = _reference_forward(hf, adapter.preprocess(images))
    assert grid == adapter.token_grid == (37, 37)
    assert tokens.shape == (1, 37 * 37, WIDTH) and adapter.token_dim == WIDTH
    torch.testing.assert_close(tokens, reference[:, 1:], rtol=1e-4, atol=1e-4)
    assert adapter.mean_of_tokens == "mean"
    torch.testing.assert_close(tokens.mean(1), adapter.embed(images)["mean"])


def test_dinov2_layout_file_gives_identical_features(loaded):
    _, (from_hf, from_dinov2) = loaded
    images = torch.randint(0, 256, (2, 1, 40, 40), generator=torch.Generator().manual_seed(1))
    a, b = from_hf.embed(images.to(torch.uint8)), from_dinov2.embed(images.to(torch.uint8))
    for pooling in a:
        torch.testing.assert_close(a[pooling], b[pooling], rtol=0, atol=0)


def test_mapping_round_trips_exactly():
    """timm state -> HF names (split qkv) -> adapter mapping -> the same timm state."""
    model = make_adapter("rad-dino").reduced(DEPTH).build_model()
    state = model.state_dict()
    hf = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.mask_token": torch.zeros(1, WIDTH),
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    for i in range(DEPTH):
        p, b = f"encoder.layer.{i}.", f"blocks.{i}."
        for param in ("weight", "bias"):
            q, k, v = state[f"{b}attn.qkv.{param}"].chunk(3)
            for name, part in (("query", q), ("key", k), ("value", v)):
                hf[f"{p}attention.attention.{name}.{param}"] = part
            hf[f"{p}attention.output.dense.{param}"] = state[f"{b}attn.proj.{param}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                hf[f"{p}{name}.{param}"] = state[f"{b}{name}.{param}"]
        hf[p + "layer_scale1.lambda1"] = state[b + "ls1.gamma"]
        hf[p + "layer_scale2.lambda1"] = state[b + "ls2.gamma"]
    back = rad_dino_state(hf, "round trip")
    assert sorted(back) == sorted(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key


def test_preprocessing_and_poolings():
    adapter = make_adapter("rad-dino")
    spec = adapter.input_spec
    assert spec.size == (518, 518) and spec.interpolation == "bicubic"
    assert spec.mean == (0.5307,) * 3 and spec.std == (0.2583,) * 3
    assert adapter.default_pooling == "cls"
    assert adapter.embed_dims == {"cls": 768, "cls+mean": 1536, "mean": 768}
    assert adapter.token_grid == (37, 37) and adapter.token_dim == 768  # 518 px / 14
    assert adapter.info.params == CheckpointLayout.load("rad-dino-hf").parameter_count()


def test_unknown_keys_and_missing_parts_are_user_errors():
    hf = _hf_state()
    with pytest.raises(UserError, match="'encoder.layer.0.attention.qkv.weight'"):
        rad_dino_state({**hf, "encoder.layer.0.attention.qkv.weight": hf["layernorm.weight"]}, "f")
    hf.pop("encoder.layer.1.attention.attention.value.bias")
    with pytest.raises(UserError, match=r"blocks\.1\.attn\.qkv\.bias needs query, key and value"):
        rad_dino_state(hf, "f")
    with pytest.raises(UserError, match="expected a flat state dict"):
        rad_dino_state({"state_dict": hf}, "f")


def test_no_network_is_a_user_error(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise OSError("unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    with pytest.raises(UserError, match="--weights FILE"):
        make_adapter("rad-dino").reduced(DEPTH).load()
