"""The MONAI 2-D Swin re-implementation: each piece against an independent implementation (timm's
Swin v1, which shares MONAI's math but not its code or key names) or against its formula."""

import pytest
import torch
import torch.nn.functional as F
from timm.models.swin_transformer import PatchMerging as TimmPatchMerging
from timm.models.swin_transformer import SwinTransformerBlock as TimmSwinBlock
from torch import nn

from model_zoo.swin_monai import (
    PatchMerging,
    StageConv,
    SwinBlock,
    SwinTransformer2d,
    shifted_window_mask,
    window_and_shift,
)


def _randomise(module: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2 + (1.0 if p.ndim == 1 else 0))


def _timm_to_ours(state: dict) -> dict:
    renames = {"mlp.fc1.": "mlp.linear1.", "mlp.fc2.": "mlp.linear2."}
    out = {}
    for key, value in state.items():
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


@pytest.mark.parametrize(("size", "shift"), [((16, 16), 0), ((16, 16), 4), ((20, 12), 4)])
def test_block_matches_timm_swin_block(size, shift):
    dim, heads, window = 32, 2, 8
    ref = TimmSwinBlock(dim, size, num_heads=heads, window_size=window, shift_size=shift).eval()
    _randomise(ref, seed=1)
    ours = SwinBlock(dim, heads, (window, window), (shift, shift), 4.0, qkv_bias=True).eval()
    state = _timm_to_ours(ref.state_dict())
    state["attn.relative_position_index"] = ours.attn.relative_position_index  # timm: not saved
    ours.load_state_dict(state, strict=True)
    torch.testing.assert_close(
        ours.attn.relative_position_index, ref.attn.relative_position_index.long()
    )
    x = torch.randn(2, *size, dim, generator=torch.Generator().manual_seed(2))
    hp, wp = (-(-s // window) * window for s in size)
    mask = shifted_window_mask(hp, wp, (window, window), (4, 4))
    with torch.inference_mode():
        torch.testing.assert_close(ours(x, mask), ref(x), rtol=1e-5, atol=1e-5)


def test_patch_merging_matches_timm_and_monai_order():
    ref = TimmPatchMerging(16).eval()
    _randomise(ref, seed=3)
    ours = PatchMerging(16).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 6, 10, 16, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), ref(x))
    # The concatenation itself: (row, col) offsets (0,0), (1,0), (0,1), (1,1).
    ours.norm, ours.reduction = nn.Identity(), nn.Identity()
    cat = ours(x)
    expected = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
    torch.testing.assert_close(cat, torch.cat(expected, dim=-1), rtol=0, atol=0)


def test_windows_shrink_to_small_maps_and_lose_their_shift():
    assert window_and_shift((16, 16), (8, 8), (4, 4)) == ((8, 8), (4, 4))
    assert window_and_shift((8, 20), (8, 8), (4, 4)) == ((8, 8), (0, 4))
    assert window_and_shift((3, 5), (8, 8), (4, 4)) == ((3, 5), (0, 0))


def test_shifted_window_mask_separates_wrapped_regions():
    mask = shifted_window_mask(16, 16, (8, 8), (4, 4))
    assert mask.shape == (4, 64, 64)
    assert not mask[0].any()  # the top-left window holds no wrapped tokens
    # The bottom-right window mixes four regions of 16 tokens each: 4 x 16 x 16 pairs allowed.
    assert int((mask[3] == 0).sum()) == 4 * 16 * 16
    assert set(mask.unique().tolist()) == {-100.0, 0.0}


def test_v2_stage_conv_is_monai_unet_res_block():
    block = StageConv(8).eval()
    _randomise(block, seed=5)
    x = torch.randn(2, 8, 12, 12, generator=torch.Generator().manual_seed(6))
    w1, w2 = block.layer.conv1.conv.weight, block.layer.conv2.conv.weight
    hidden = F.leaky_relu(F.instance_norm(F.conv2d(x, w1, padding=1)), 0.01)
    expected = F.leaky_relu(F.instance_norm(F.conv2d(hidden, w2, padding=1)) + x, 0.01)
    with torch.inference_mode():
        torch.testing.assert_close(block(x), expected)
    assert sorted(block.state_dict()) == ["layer.conv1.conv.weight", "layer.conv2.conv.weight"]


def _tiny(use_v2: bool = True) -> SwinTransformer2d:
    model = SwinTransformer2d(3, 8, (4, 4), (2, 2), (1, 2, 1, 1), (1, 1, 2, 2), use_v2=use_v2)
    _randomise(model, seed=7)
    return model.eval()


def test_five_maps_at_strides_2_to_32_channel_normalised():
    model = _tiny()
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        outs = model(x)
        raw = model(x, normalize=False)
    assert [tuple(o.shape) for o in outs] == [
        (2, 8 * 2**i, 64 // 2 ** (i + 1), 96 // 2 ** (i + 1)) for i in range(5)
    ]
    assert model.num_features == outs[-1].shape[1] == 128
    for out, plain in zip(outs, raw, strict=True):
        # MONAI's proj_out: a LayerNorm over channels at every position, without parameters.
        torch.testing.assert_close(out.mean(1), torch.zeros_like(out.mean(1)), atol=1e-5, rtol=0)
        # unit variance up to LayerNorm's eps (1e-5) over small raw variances
        variance = out.var(1, unbiased=False)
        torch.testing.assert_close(variance, torch.ones_like(variance), atol=2e-3, rtol=0)
        assert not torch.allclose(out, plain)


def test_module_names_are_monai_names():
    keys = set(_tiny().state_dict())
    assert "patch_embed.proj.weight" in keys
    assert "layers2.0.blocks.1.attn.relative_position_index" in keys
    assert "layers4.0.downsample.reduction.weight" in keys
    assert "layers3c.0.layer.conv2.conv.weight" in keys
    assert not any(k.startswith("layers1c") for k in _tiny(use_v2=False).state_dict())
