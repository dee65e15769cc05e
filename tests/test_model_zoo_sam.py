"""SAM ViT-B (model_zoo/sam.py): reduced-depth plan, the three key layouts, the reference
features of facebookresearch/segment-anything, poolings and preprocessing."""

import math

import pytest
import torch
from safetensors.torch import save_file

from model_zoo.sam import (
    NECK_MEAN,
    PRENECK_MEAN,
    SamViTB,
    global_positions,
    kept_blocks,
    renumber_blocks,
)
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout

# Features of segment_anything's ImageEncoderViT (facebookresearch/segment-anything@dca509f,
# depth 2 with global attention in block 1, window 14, rel-pos, LayerNorm eps 1e-6, 1024 px)
# loaded with `scaled_random(<reduced sam-vitb-official encoder keys>, seed=0)` on the input
# `torch.rand(1, 3, 1024, 1024, generator=seed 1)`; 'preneck' is the mean of the tokens entering
# the neck. Computed once with the official code; (index, value) pairs and the sums.
REFERENCE = {
    NECK_MEAN: {
        "at": {0: -0.656712, 1: -1.335489, 37: -0.970017, 128: 0.458549, 255: 0.606974},
        "sum": 1.36172,
    },
    PRENECK_MEAN: {
        "at": {0: -0.732249, 5: -1.719115, 300: -2.380432, 511: -0.503179, 767: 0.512727},
        "sum": 25.22376,
    },
}


def scaled_random(shapes: dict, seed: int) -> dict:
    """Weights that keep activations O(1) (a random layout's 0.02 * N(0, 1) makes LayerNorm
    weights ~0 and the features ~0): fan-in-scaled matrices, position tables 0.5 * N(0, 1),
    1-D weights near 1 and biases near 0. Keys are drawn in sorted order."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        x = torch.randn(shape, generator=generator)
        if key.endswith(("pos_embed", "rel_pos_h", "rel_pos_w")):
            x = 0.5 * x
        elif len(shape) >= 2:
            x = x / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            x = 1.0 + 0.1 * x
        else:
            x = 0.1 * x
        out[key] = x
    return out


def _images(n=3, h=40, w=52):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, h, w), generator=generator, dtype=torch.uint8)


def _reduced_layout(name, depth=2):
    return renumber_blocks(CheckpointLayout.load(name), kept_blocks(depth))


def test_reduced_plan_keeps_a_global_block():
    assert kept_blocks(None) == list(range(12))
    assert kept_blocks(1) == [2]
    assert kept_blocks(2) == [0, 2]
    assert kept_blocks(4) == [0, 1, 2, 3]
    assert global_positions(kept_blocks(None)) == [2, 5, 8, 11]
    assert global_positions(kept_blocks(2)) == [1]
    model = SamViTB().reduced(2).build_model()
    assert [block.window_size for block in model.blocks] == [14, 0]
    # the reduced layout carries block 2's global tables as block 1, and nothing beyond
    layout = _reduced_layout("sam-vitb-official")
    assert layout.tensors["image_encoder.blocks.1.attn.rel_pos_h"].shape == (127, 64)
    assert layout.tensors["image_encoder.blocks.0.attn.rel_pos_h"].shape == (27, 64)
    assert not any(".blocks.2." in key for key in layout.tensors)


def test_full_model_is_sam_vitb():
    adapter = SamViTB()
    model = adapter.meta_model()
    assert adapter.info.params == 89_670_912  # segment_anything's image encoder, counted
    assert [i for i, b in enumerate(model.blocks) if b.window_size == 0] == [2, 5, 8, 11]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)  # SAM's eps, not timm's default 1e-5
    assert tuple(model.pos_embed.shape) == (1, 64, 64, 768)
    spec = adapter.input_spec
    assert spec.size == (1024, 1024)
    # SAM's pixel_mean/std on 0-255, as fractions
    sam_mean, sam_std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
    assert spec.mean == pytest.approx([m / 255 for m in sam_mean])
    assert spec.std == pytest.approx([s / 255 for s in sam_std])
    assert adapter.poolings[0] == NECK_MEAN
    assert adapter.embed_dims == {NECK_MEAN: 256, PRENECK_MEAN: 768}


def _timm_to_official(state):
    """Inverse renames, written from segment_anything's module names."""
    out = {}
    for key, value in state.items():
        key = key.replace(".mlp.fc1.", ".mlp.lin1.").replace(".mlp.fc2.", ".mlp.lin2.")
        out[f"image_encoder.{key}"] = value
    return out


def _timm_to_vitsam(state):
    """Inverse renames, written from mmpretrain's ViTSAM module names."""
    out = {}
    for key, value in state.items():
        key = key.replace("blocks.", "layers.").replace(
            "patch_embed.proj.", "patch_embed.projection."
        )
        key = key.replace(".norm1.", ".ln1.").replace(".norm2.", ".ln2.")
        key = key.replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(".mlp.fc2.", ".ffn.layers.1.")
        key = key.replace("neck.", "channel_reduction.")
        out[f"backbone.{key}"] = value
    return out


def test_three_layouts_give_the_same_features(tmp_path):
    small = SamViTB().reduced(2)
    state = scaled_random({k: v.shape for k, v in small.build_model().state_dict().items()}, 3)
    timm_path = tmp_path / "model.safetensors"
    save_file(state, str(timm_path))
    official = _timm_to_official(state)
    # the whole SAM: the prompt encoder and mask decoder must be ignored
    official["prompt_encoder.point_embeddings.0.weight"] = torch.ones(1, 256)
    official["mask_decoder.iou_token.weight"] = torch.ones(1, 256)
    official_path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(official, official_path)
    mm_path = tmp_path / "vit-sam.pth"
    torch.save({"state_dict": _timm_to_vitsam(state), "meta": {"dataset_meta": {}}}, mm_path)

    images = _images()
    reference = SamViTB().reduced(2).load(str(timm_path)).embed(images)
    for path in (official_path, mm_path):
        out = SamViTB().reduced(2).load(str(path)).embed(images)
        for pooling in (NECK_MEAN, PRENECK_MEAN):
            torch.testing.assert_close(out[pooling], reference[pooling], rtol=0, atol=0)


def test_matches_segment_anything_reference(tmp_path):
    layout = _reduced_layout("sam-vitb-official")
    shapes = {k: layout.tensors[k].shape for k in layout.used_keys()}
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(scaled_random(shapes, 0), path)
    adapter = SamViTB().reduced(2).load(str(path))
    x = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = adapter.forward_features(x)  # the full 1024-px grid: no table resampling
    for pooling, ref in REFERENCE.items():
        got = out[pooling][0]
        for index, value in ref["at"].items():
            assert got[index].item() == pytest.approx(value, abs=2e-4)
        assert got.sum().item() == pytest.approx(ref["sum"], rel=1e-4, abs=2e-3)


def test_tokens_are_the_segment_anything_image_embedding(tmp_path):
    """The tokens are the neck output (the image embedding SAM's mask decoder reads), row-major
    on the 64 x 64 grid at 1024 px; their mean is the reference 'mean' pooling."""
    full = SamViTB()
    assert (full.token_grid, full.token_dim, full.mean_of_tokens) == ((64, 64), 256, NECK_MEAN)
    assert SamViTB().reduced(2).token_grid == (16, 16)  # reduced variants run at 256 px
    layout = _reduced_layout("sam-vitb-official")
    shapes = {k: layout.tensors[k].shape for k in layout.used_keys()}
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(scaled_random(shapes, 0), path)
    adapter = SamViTB().reduced(2).load(str(path))
    x = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        tokens, grid = adapter.forward_tokens(x)
        neck = adapter.model.forward_features(x)  # timm's own forward: [1, 256, 64, 64]
    assert grid == (64, 64) and tuple(tokens.shape) == (1, 64 * 64, 256)
    torch.testing.assert_close(tokens.reshape(1, 64, 64, 256), neck.permute(0, 2, 3, 1))
    got = tokens.mean(dim=1)[0]
    for index, value in REFERENCE[NECK_MEAN]["at"].items():
        assert got[index].item() == pytest.approx(value, abs=2e-4)
    assert got.sum().item() == pytest.approx(REFERENCE[NECK_MEAN]["sum"], rel=1e-4, abs=2e-3)


def test_poolings_are_the_neck_and_block_averages(tmp_path):
    small = SamViTB().reduced(2)
    state = scaled_random({k: v.shape for k, v in small.build_model().state_dict().items()}, 4)
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    adapter = small.load(str(path))
    images = _images(2)
    out = adapter.embed(images)
    x = adapter.preprocess(images)
    assert tuple(x.shape) == (2, 3, 256, 256)  # reduced variants run at 256 px
    model = adapter.model
    captured = []
    hook = model.blocks[-1].register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.inference_mode():
        neck = model.forward_features(x)  # timm's own forward: the neck output [B, 256, 16, 16]
    hook.remove()
    tokens = captured[0]  # the last block's output [B, 16, 16, 768]
    torch.testing.assert_close(out[NECK_MEAN], neck.mean(dim=(2, 3)))
    torch.testing.assert_close(out[PRENECK_MEAN], tokens.mean(dim=(1, 2)))


def test_other_files_are_user_errors(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model": {"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(UserError, match="not a SAM ViT-B checkpoint"):
        SamViTB().reduced(2).load(str(path))
    torch.save({"image_encoder.blocks.0.mystery.weight": torch.zeros(3)}, path)
    with pytest.raises(UserError, match="unexpected key 'blocks.0.mystery.weight'"):
        SamViTB().reduced(2).load(str(path))


def test_unreachable_hub_is_a_user_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="--weights"):
        SamViTB().reduced(2).load()
