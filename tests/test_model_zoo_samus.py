"""SAMUS (model_zoo/samus.py): the re-implemented encoder against reference features of
xianlin7/SAMUS's own code, its key layout, preprocessing and checkpoint handling."""

import math

import pytest
import torch

from model_zoo.sam import NECK_MEAN, PRENECK_MEAN, kept_blocks, renumber_blocks
from model_zoo.samus import Samus
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout

# Features of SAMUS's ImageEncoderViT (xianlin7/SAMUS@030ed07, models/segment_anything_samus/
# modeling/image_encoder.py, as build_samus_vit_b makes it at 256 px but with depth 2 and the
# global block at index 1) loaded with `scaled_random(<reduced samus-official encoder keys>,
# seed=0)` on `torch.rand(1, 3, 256, 256, generator=seed 1)`; 'preneck' is the mean of the neck's
# input (tokens + 0.5 x CNN branch). Computed once with the official code.
REFERENCE = {
    NECK_MEAN: {
        "at": {0: -0.903772, 1: -1.485319, 37: 0.997122, 128: 1.536176, 255: -0.621958},
        "sum": -2.34489,
    },
    PRENECK_MEAN: {
        "at": {0: -1.703676, 5: -1.611104, 300: -1.292769, 511: 0.215948, 767: -1.161067},
        "sum": 346.6543,
    },
}


def scaled_random(shapes: dict, seed: int) -> dict:
    """Weights that keep activations O(1): fan-in-scaled matrices, position tables
    0.5 * N(0, 1), 1-D weights near 1 and biases near 0; keys drawn in sorted order."""
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


def _reduced_layout(depth=2):
    return renumber_blocks(CheckpointLayout.load("samus-official"), kept_blocks(depth))


def _encoder_weights(seed=0):
    layout = _reduced_layout()
    return scaled_random({k: layout.tensors[k].shape for k in layout.used_keys()}, seed)


def test_matches_samus_reference(tmp_path):
    path = tmp_path / "SAMUS.pth"
    torch.save(_encoder_weights(), path)
    adapter = Samus().reduced(2).load(str(path))
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = adapter.forward_features(x)
    for pooling, ref in REFERENCE.items():
        got = out[pooling][0]
        for index, value in ref["at"].items():
            assert got[index].item() == pytest.approx(value, abs=2e-4)
        assert got.sum().item() == pytest.approx(ref["sum"], rel=1e-4, abs=2e-3)


def test_tokens_are_the_samus_image_embedding(tmp_path):
    """The tokens are the neck output (the image embedding SAMUS's mask decoder reads), row-major
    on the 32 x 32 grid of the stride-8 patch embedding; their mean is the reference 'mean'."""
    full = Samus()
    assert (full.token_grid, full.token_dim, full.mean_of_tokens) == ((32, 32), 256, NECK_MEAN)
    path = tmp_path / "SAMUS.pth"
    torch.save(_encoder_weights(), path)
    adapter = Samus().reduced(2).load(str(path))
    assert adapter.token_grid == (32, 32)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        tokens, grid = adapter.forward_tokens(x)
        neck = adapter.model(x)  # the encoder's image embedding [1, 256, 32, 32]
    assert grid == (32, 32) and tuple(tokens.shape) == (1, 32 * 32, 256)
    torch.testing.assert_close(tokens.reshape(1, 32, 32, 256), neck.permute(0, 2, 3, 1))
    got = tokens.mean(dim=1)[0]
    for index, value in REFERENCE[NECK_MEAN]["at"].items():
        assert got[index].item() == pytest.approx(value, abs=2e-4)
    assert got.sum().item() == pytest.approx(REFERENCE[NECK_MEAN]["sum"], rel=1e-4, abs=2e-3)


def test_architecture_and_layout():
    adapter = Samus()
    assert adapter.info.params == 129_259_008  # SAMUS's image encoder, counted
    model = adapter.meta_model()
    adapters = [i for i, b in enumerate(model.blocks) if hasattr(b, "Space_Adapter")]
    assert adapters == [2, 5, 8, 11]
    assert [b.window for b in model.blocks if b.window] == [14] * 8
    assert tuple(model.blocks[2].attn.rel_pos_h.shape) == (63, 64)  # global over 32 x 32 tokens
    # reduced variants keep a global block, with its adapters, as block 1
    small = Samus().reduced(2).build_model()
    assert [hasattr(b, "Space_Adapter") for b in small.blocks] == [False, True]
    layout = _reduced_layout()
    assert layout.tensors["image_encoder.blocks.1.Space_Adapter.q.weight"].shape == (768, 768)
    assert layout.tensors["image_encoder.blocks.1.attn.rel_pos_h"].shape == (63, 64)


def test_input_is_grayscale_on_unit_range():
    adapter = Samus()
    spec = adapter.input_spec
    assert spec.size == (256, 256) and spec.interpolation == "bilinear"
    images = torch.randint(0, 256, (2, 1, 256, 256), dtype=torch.uint8)
    x = adapter.preprocess(images)
    # no mean/std: the encoder sees to_tensor's [0, 1] values, repeated to 3 channels
    torch.testing.assert_close(x, images.float().div(255).expand(-1, 3, -1, -1))
    assert adapter.poolings == (NECK_MEAN, PRENECK_MEAN)
    assert adapter.embed_dims == {NECK_MEAN: 256, PRENECK_MEAN: 768}


def test_whole_model_and_dataparallel_files_load_the_same(tmp_path):
    encoder = _encoder_weights(seed=5)
    whole = {f"image_encoder.{k.removeprefix('image_encoder.')}": v for k, v in encoder.items()}
    whole["prompt_encoder.point_embeddings.0.weight"] = torch.ones(1, 256)
    whole["mask_decoder.iou_token.weight"] = torch.ones(1, 256)
    plain, wrapped = tmp_path / "plain.pth", tmp_path / "wrapped.pth"
    torch.save(whole, plain)
    torch.save({f"module.{k}": v for k, v in whole.items()}, wrapped)
    images = torch.randint(0, 256, (2, 1, 30, 40), generator=torch.Generator().manual_seed(2))
    images = images.to(torch.uint8)
    a = Samus().reduced(2).load(str(plain)).embed(images)
    b = Samus().reduced(2).load(str(wrapped)).embed(images)
    for pooling in a:
        torch.testing.assert_close(a[pooling], b[pooling], rtol=0, atol=0)


def test_other_files_and_no_file_are_user_errors(tmp_path):
    path = tmp_path / "sam_vit_b.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, path)
    with pytest.raises(UserError, match="not a SAMUS checkpoint"):
        Samus().reduced(2).load(str(path))
    with pytest.raises(UserError, match="--weights"):
        Samus().reduced(2).load()
