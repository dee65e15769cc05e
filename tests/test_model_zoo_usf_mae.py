"""USF-MAE: the official checkpoint (whole MAE, decoder included) gives MAE's encoder features."""

import pytest
import torch
import torch.nn.functional as F

from model_zoo.usf_mae import USFMAE, WEIGHTS_100_EPOCHS
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout

DEPTH = 2
DIM, HEADS = 768, 12


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A reduced random file in the layout the official notebook saves, and its flat state."""
    layout = CheckpointLayout.load("usf-mae-vitb16").reduced(DEPTH)
    state = layout.random_checkpoint(seed=3)
    path = tmp_path_factory.mktemp("usf-mae") / layout.file_name
    torch.save(state, path)
    return path, state


def _images(n=3, h=40, w=52):
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 1, h, w), generator=generator, dtype=torch.uint8)


def _mae_encoder(w: dict, x: torch.Tensor) -> torch.Tensor:
    """MAE's forward_encoder with nothing masked, written out with plain tensor ops: patch
    embedding plus fixed pos_embed, CLS token with its own position, pre-norm blocks, final
    LayerNorm (eps 1e-6)."""
    h = F.conv2d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=16)
    h = h.flatten(2).transpose(1, 2) + w["pos_embed"][:, 1:]
    cls = (w["cls_token"] + w["pos_embed"][:, :1]).expand(h.shape[0], -1, -1)
    h = torch.cat([cls, h], dim=1)
    b, n, _ = h.shape
    for i in range(DEPTH):
        p = f"blocks.{i}."
        y = F.layer_norm(h, (DIM,), w[p + "norm1.weight"], w[p + "norm1.bias"], 1e-6)
        qkv = F.linear(y, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (DIM // HEADS) ** -0.5).softmax(dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, n, DIM)
        h = h + F.linear(y, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"])
        y = F.layer_norm(h, (DIM,), w[p + "norm2.weight"], w[p + "norm2.bias"], 1e-6)
        y = F.gelu(F.linear(y, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"]))
        h = h + F.linear(y, w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
    return F.layer_norm(h, (DIM,), w["norm.weight"], w["norm.bias"], 1e-6)


def test_official_checkpoint_gives_the_mae_encoder_features(official):
    path, state = official
    adapter = USFMAE().reduced(DEPTH).load(str(path))
    images = _images()
    out = adapter.embed(images)
    with torch.no_grad():
        tokens = _mae_encoder(state, adapter.preprocess(images))
    torch.testing.assert_close(out["cls"], tokens[:, 0])
    torch.testing.assert_close(out["mean"], tokens[:, 1:].mean(dim=1))
    assert adapter.default_pooling == "cls"
    assert adapter.weights_id().startswith("file:sha256=")


def test_mae_training_container_loads_the_same_encoder(official, tmp_path):
    path, state = official
    wrapped = tmp_path / "checkpoint-99.pth"
    torch.save({"model": state, "epoch": 99}, wrapped)
    images = _images()
    direct = USFMAE().reduced(DEPTH).load(str(path)).embed(images)
    via_model = USFMAE().reduced(DEPTH).load(str(wrapped)).embed(images)
    for pooling in direct:
        torch.testing.assert_close(via_model[pooling], direct[pooling], rtol=0, atol=0)


def test_decoder_is_dropped_but_the_encoder_is_loaded_strictly(official, tmp_path):
    _, state = official
    adapter = USFMAE().reduced(DEPTH)
    converted = adapter.convert_checkpoint(state, "f")
    assert not any(k.startswith("decoder_") or k == "mask_token" for k in converted)
    assert set(converted) == set(adapter.build_model().state_dict())
    broken = {k: v for k, v in state.items() if k != "norm.weight"}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(UserError, match=r"1 missing keys \(e.g. norm.weight\)"):
        USFMAE().reduced(DEPTH).load(str(tmp_path / "broken.pt"))


def test_preprocessing_follows_the_official_transform():
    adapter = USFMAE()
    spec = adapter.input_spec
    assert spec.size == (224, 224) and spec.channels == 3
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    # Resize((224, 224), InterpolationMode.NEAREST) of a PIL image: PIL's rule, torch's name
    assert spec.interpolation == "nearest-exact"
    images = _images(n=1, h=56, w=56)
    x = adapter.preprocess(images)
    raw = torch.round((x[0, 0] * spec.std[0] + spec.mean[0]) * 255)
    assert set(raw.unique().tolist()) <= set(images.float().unique().tolist())  # no blending


def test_weights_are_not_downloaded_but_named():
    with pytest.raises(UserError, match="--weights") as error:
        USFMAE().load()
    assert WEIGHTS_100_EPOCHS in str(error.value)


def test_parameter_count_is_the_vitb16_encoder():
    adapter = USFMAE()
    layout = CheckpointLayout.load("usf-mae-vitb16")
    assert adapter.info.params == layout.parameter_count() == 85_798_656
    assert adapter.embed_dims == {"cls": 768, "mean": 768}


@pytest.mark.parametrize("height, width", [(600, 600), (480, 640), (100, 90)])
def test_resize_is_pils_nearest(height, width):
    """the adapter's own resize picks the pixels PIL's NEAREST picks (torch's
    "nearest" differs on 98 % of a 600 -> 224 resize)."""
    import numpy as np
    from PIL import Image

    adapter = USFMAE()
    spec = adapter.input_spec
    generator = torch.Generator().manual_seed(height)
    images = torch.randint(0, 256, (1, 1, height, width), generator=generator, dtype=torch.uint8)
    x = adapter.preprocess(images)
    ours = torch.round((x[0, 0] * spec.std[0] + spec.mean[0]) * 255).to(torch.uint8).numpy()
    pil = Image.fromarray(images[0, 0].numpy()).resize((224, 224), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(ours, np.asarray(pil))


def test_tokens_are_the_mae_encoders_normed_patch_tokens(official):
    path, state = official
    adapter = USFMAE().reduced(DEPTH).load(str(path))
    images = _images()
    tokens, grid = adapter.embed_tokens(images)
    with torch.no_grad():
        reference = _mae_encoder(state, adapter.preprocess(images))
    assert grid == adapter.token_grid == (14, 14) and tokens.shape == (3, 196, DIM)
    torch.testing.assert_close(tokens, reference[:, 1:])
    assert adapter.mean_of_tokens == "mean"
    assert USFMAE().token_grid == (14, 14) and USFMAE().token_dim == DIM  # full size: 224 / 16
