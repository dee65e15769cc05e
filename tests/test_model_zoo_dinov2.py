"""DINOv2 adapters: official and timm layouts give the same features; token preparation matches
timm's stock ViT at the native grid and DINOv2's own resampling at 224 px; poolings as documented.
"""

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import checkpoint_filter_fn

from model_zoo.dinov2 import VARIANTS, dino_poolings, dinov2_state, rename_keys
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.layouts import CheckpointLayout
from ultrabench_eval.models.weights import state_mismatches

DEPTH = 2


def _images(n=2, h=40, w=52):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, h, w), generator=generator, dtype=torch.uint8)


def _official_state(name: str, seed: int = 1) -> dict:
    """A reduced official release file with random values; norms near 1 so tokens differ."""
    stem = VARIANTS[name].layout_stem
    state = CheckpointLayout.load(f"{stem}-pretrain").reduced(DEPTH).random_checkpoint(seed)
    for key, value in state.items():
        if key.endswith(("norm1.weight", "norm2.weight")) or key == "norm.weight":
            state[key] = value + 1.0
        elif key.endswith("gamma"):
            state[key] = value * 20  # layer scale large enough for the blocks to matter
    return state


def _timm_stock(name: str, state: dict, img_size: int = 518):
    """timm's own DINOv2 model, loaded through timm's own conversion of the official file."""
    model = timm.create_model(
        VARIANTS[name].timm_name, depth=DEPTH, num_classes=0, img_size=img_size
    ).eval()
    model.load_state_dict(checkpoint_filter_fn(dict(state), model), strict=True)
    return model


@pytest.fixture(scope="module", params=["dinov2-vits14", "dinov2-vits14-reg"])
def loaded(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    state = _official_state(name)
    official = folder / f"{VARIANTS[name].official_name}_pretrain.pth"
    torch.save(state, official)
    timm_file = folder / "model.safetensors"
    stock = _timm_stock(name, state)
    save_file({k: v.contiguous() for k, v in stock.state_dict().items()}, str(timm_file))
    adapters = [make_adapter(name).reduced(DEPTH).load(str(p)) for p in (official, timm_file)]
    return name, state, adapters


def test_official_and_timm_files_give_identical_features(loaded):
    _, _, (from_official, from_timm) = loaded
    images = _images()
    a, b = from_official.embed(images), from_timm.embed(images)
    for pooling in from_official.poolings:
        torch.testing.assert_close(a[pooling], b[pooling], rtol=0, atol=0)


def test_native_grid_matches_timm_stock_model(loaded):
    """At 518 px no resampling happens: CLS, registers and patches must be exactly timm's."""
    name, state, (adapter, _) = loaded
    x = torch.randn(2, 3, 518, 518, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ours = adapter.model.forward_features(x)
        theirs = _timm_stock(name, state).forward_features(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def _official_resample(pos: torch.Tensor, grid: int, registers: bool) -> torch.Tensor:
    """facebookresearch/dinov2 interpolate_pos_encoding, for a square grid, written out."""
    side = math.isqrt(pos.shape[1] - 1)
    patch = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    if registers:  # hub: interpolate_offset=0.0, interpolate_antialias=True
        patch = F.interpolate(patch, size=(grid, grid), mode="bicubic", antialias=True)
    else:  # hub: interpolate_offset=0.1, interpolate_antialias=False
        scale = (grid + 0.1) / side
        patch = F.interpolate(patch, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    return torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)


def _stock_224(name: str, state: dict):
    """A stock 224 px timm ViT whose position embedding was resampled with the official DINOv2
    call (which differs from timm's own resampling)."""
    registers = VARIANTS[name].registers > 0
    resampled = _official_resample(state["pos_embed"], 16, registers)
    stock = timm.create_model(VARIANTS[name].timm_name, depth=DEPTH, num_classes=0, img_size=224)
    stock_state = {k: v for k, v in state.items() if k not in ("mask_token", "register_tokens")}
    if registers:  # timm's register layout: CLS position folded into cls_token
        stock_state["cls_token"] = state["cls_token"] + resampled[:, :1]
        stock_state["pos_embed"] = resampled[:, 1:]
        stock_state["reg_token"] = state["register_tokens"]
    else:
        stock_state["pos_embed"] = resampled
    stock.load_state_dict(stock_state, strict=True)
    return stock.eval()


def test_224px_uses_dinov2s_own_position_resampling(loaded):
    """At 224 px the adapter must equal the stock ViT with DINOv2's resampling."""
    name, state, (adapter, _) = loaded
    x = adapter.preprocess(_images())
    with torch.inference_mode():
        ours = adapter.model.forward_features(x)
        theirs = _stock_224(name, state).forward_features(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_tokens_are_the_reference_normed_patch_tokens(loaded):
    """Patch tokens = the reference model's final normed tokens without CLS and registers (the
    official x_norm_patchtokens), row-major on the 16x16 grid; their mean is `mean`."""
    name, state, (adapter, _) = loaded
    images = _images()
    tokens, grid = adapter.embed_tokens(images)
    with torch.inference_mode():
        reference = _stock_224(name, state).forward_features(adapter.preprocess(images))
    prefix = 1 + VARIANTS[name].registers
    assert grid == adapter.token_grid == (16, 16)
    assert tokens.shape == (2, 16 * 16, 384) and adapter.token_dim == 384
    torch.testing.assert_close(tokens, reference[:, prefix:], rtol=1e-5, atol=1e-5)
    assert adapter.mean_of_tokens == "mean"
    torch.testing.assert_close(tokens.mean(1), adapter.embed(images)["mean"])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_full_size_token_grid_and_width(name):
    adapter = make_adapter(name)
    assert adapter.token_grid == (16, 16)  # 224 px / 14
    assert adapter.token_dim == VARIANTS[name].embed_dim
    model = adapter.meta_model()
    assert model.patch_embed.patch_size == (14, 14) and model.embed_dim == adapter.token_dim


def test_offset_resampling_is_not_timms():
    """Guard: the non-register models' resampling is DINOv2's, not timm's size-based antialiased
    one, and the native grid is used as it is."""
    from timm.layers import resample_abs_pos_embed

    model = make_adapter("dinov2-vits14").reduced(1).build_model()
    pos = torch.randn(1, 1 + 37 * 37, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.pos_embed.copy_(pos)
        ours = model.resampled_pos_embed(16, 16)
        assert torch.equal(model.resampled_pos_embed(37, 37), model.pos_embed)
    torch.testing.assert_close(ours, _official_resample(pos, 16, registers=False))
    timm_way = resample_abs_pos_embed(pos, new_size=(16, 16), old_size=(37, 37))
    assert (ours - timm_way).abs().max() > 1e-3


def test_poolings_are_cls_and_patch_mean_without_registers(loaded):
    name, _, (adapter, _) = loaded
    images = _images()
    out = adapter.embed(images)
    with torch.inference_mode():
        tokens = adapter.model.forward_features(adapter.preprocess(images))
    prefix = 1 + VARIANTS[name].registers
    assert tokens.shape[1] == prefix + 16 * 16
    torch.testing.assert_close(out["cls"], tokens[:, 0])
    torch.testing.assert_close(out["mean"], tokens[:, prefix:].mean(1))
    torch.testing.assert_close(out["cls+mean"], torch.cat([out["cls"], out["mean"]], 1))
    assert adapter.default_pooling == "cls+mean"
    assert adapter.embed_dims == {"cls+mean": 768, "cls": 384, "mean": 384}


def test_dino_poolings_skip_prefix_tokens():
    tokens = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)
    out = dino_poolings(tokens, num_prefix_tokens=5)
    torch.testing.assert_close(out["mean"], tokens[:, 5:].mean(1))
    torch.testing.assert_close(out["cls"], tokens[:, 0])


def test_input_spec_and_metadata():
    adapter = make_adapter("dinov2-vitb14-reg")
    spec = adapter.input_spec
    assert spec.size == (224, 224) and spec.interpolation == "bicubic"
    assert spec.mean == (0.485, 0.456, 0.406)
    assert adapter.info.params == 86_582_784  # official ViT-B/14 reg4 minus mask_token
    assert "dinov2_vitb14_reg4_pretrain.pth" in adapter.info.weights_source


def test_timm_register_layout_declares_the_restored_position_slot():
    """timm's register file folds the CLS position into cls_token: the conversion restores a zero
    slot, one embedding vector the file does not hold, and the manifest says so."""
    adapter = make_adapter("dinov2-vitb14-reg")
    assert "dinov2-vitb14-reg4-timm" in adapter.layouts
    layout = CheckpointLayout.load("dinov2-vitb14-reg4-timm")
    assert layout.values_added == 768
    state = adapter.convert_checkpoint(layout.random_checkpoint(device="meta"), layout.name)
    assert not state_mismatches(adapter.meta_model().state_dict(), state)
    assert sum(t.numel() for t in state.values()) == layout.parameter_count() + 768


def test_unknown_or_missing_keys_are_user_errors(tmp_path):
    state = _official_state("dinov2-vits14")
    with pytest.raises(UserError, match="'blocks.0.attn.qkv.weights'"):
        dinov2_state({**state, "blocks.0.attn.qkv.weights": state["pos_embed"]}, "f.pth")
    with pytest.raises(UserError, match="expected a flat DINOv2 state dict"):
        dinov2_state({"model": state}, "f.pth")
    assert "mask_token" not in dinov2_state(state, "f.pth")
    with pytest.raises(UserError, match="not part of the x layout"):
        rename_keys({"a": 1}, [("b", "b")], (), "x", "f")
    state.pop("norm.bias")
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match="missing keys .*norm.bias"):
        make_adapter("dinov2-vits14").reduced(DEPTH).load(str(path))


def test_no_network_is_a_user_error(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise OSError("unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    # both sources tried, each reason named, one line
    with pytest.raises(
        UserError, match=r"official: OSError: unreachable; hub: OSError: .*--weights"
    ):
        make_adapter("dinov2-vits14").reduced(DEPTH).load()
