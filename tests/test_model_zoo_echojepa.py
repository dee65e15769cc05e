"""EchoJEPA-L: which part of the training checkpoint loads, how its keys map, and how a still
image becomes a clip and a feature vector."""

import pytest
import torch

from model_zoo.echojepa import FILE_NAME, EchoJEPAL, echojepa_encoder_state
from model_zoo.vjepa2_vit import VJEPA2VisionTransformer
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import MODELS
from ultrabench_eval.models.layouts import CheckpointLayout


@pytest.fixture(scope="module")
def checkpoint():
    """A depth-1 random checkpoint in the official layout: encoder, predictor and
    target_encoder hold different random values. The target encoder's attention is made
    sharp (unit norm1 gain, larger q/k/v weights): with the layout's small random values it is
    near-uniform, and a still image's repeated tubelets would then give the same features
    whatever their temporal positions."""
    layout = CheckpointLayout.load("echojepa-l-train").reduced(1)
    checkpoint = layout.random_checkpoint(seed=3)
    target = checkpoint["target_encoder"]
    target["module.backbone.blocks.0.norm1.weight"].fill_(1.0)
    target["module.backbone.blocks.0.attn.qkv.weight"] *= 5.0
    return checkpoint


@pytest.fixture(scope="module")
def checkpoint_file(checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("echojepa") / FILE_NAME
    torch.save(checkpoint, path)
    return str(path)


@pytest.fixture(scope="module")
def loaded(checkpoint_file):
    return EchoJEPAL().reduced(1).load(checkpoint_file)


def _images(n=2):
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 60, 80), generator=gen, dtype=torch.uint8)


def test_registered_with_the_published_clip_and_input():
    adapter = MODELS.get("echojepa-l")()
    assert adapter.num_frames == 16 and adapter.reduced(2).num_frames == 2
    assert adapter.poolings == ("mean",) and adapter.embed_dims == {"mean": 1024}
    spec = adapter.input_spec
    assert spec.size == (224, 224) and spec.interpolation == "bilinear"
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    # README: "16 frames, stride 2, 224px ... producing 1,568 spatiotemporal tokens"
    assert adapter.info.extra["tokens"] == 1568
    # the full-size meta model, the manifest's target_encoder and the official count agree
    layout = CheckpointLayout.load("echojepa-l-train")
    assert adapter.info.params == layout.parameter_count() == 303_885_312


def test_target_encoder_is_loaded_not_the_online_encoder(checkpoint, loaded):
    state = loaded.model.state_dict()
    target = checkpoint["target_encoder"]
    online = checkpoint["encoder"]
    assert len(state) == len(target)
    for key, value in state.items():
        torch.testing.assert_close(value, target[f"module.backbone.{key}"], rtol=0, atol=0)
    key = "module.backbone.blocks.0.attn.qkv.weight"
    assert not torch.equal(online[key], target[key])


def test_still_image_equals_the_encoder_on_an_explicit_repeated_frame_clip(
    checkpoint, checkpoint_file
):
    adapter = EchoJEPAL().reduced(1).load(checkpoint_file)
    adapter.num_frames = 16  # the published clip, on a one-block model
    images = _images(1)
    out = adapter.embed(images)["mean"]
    x = adapter.preprocess(images)
    clip = torch.stack([x] * 16, dim=2)  # [B, 3, 16, 224, 224]
    # the encoder built directly, with the target encoder's weights under their own names
    reference = VJEPA2VisionTransformer(depth=1).eval()
    target = checkpoint["target_encoder"]
    reference.load_state_dict({k: target[f"module.backbone.{k}"] for k in reference.state_dict()})
    with torch.no_grad():
        tokens = reference(clip)
    assert tokens.shape == (1, 1568, 1024)
    torch.testing.assert_close(out, tokens.mean(dim=1), rtol=1e-5, atol=1e-5)


def test_tokens_are_the_reference_clip_tokens_averaged_over_time(checkpoint, checkpoint_file):
    adapter = EchoJEPAL().reduced(1).load(checkpoint_file)
    adapter.num_frames = 16  # the published clip: 8 tubelets, on a one-block model
    images = _images(1)
    tokens, grid = adapter.embed_tokens(images)
    assert grid == adapter.token_grid == (14, 14) and tokens.shape == (1, 196, 1024)
    clip = torch.stack([adapter.preprocess(images)] * 16, dim=2)
    reference = VJEPA2VisionTransformer(depth=1).eval()
    target = checkpoint["target_encoder"]
    reference.load_state_dict({k: target[f"module.backbone.{k}"] for k in reference.state_dict()})
    with torch.no_grad():
        clip_tokens = reference(clip)  # [1, 8 * 196, 1024], time, row, column
    want = clip_tokens.view(1, 8, 14, 14, 1024).mean(dim=1).flatten(1, 2)
    torch.testing.assert_close(tokens, want, rtol=1e-5, atol=1e-5)
    # the tubelets differ (temporal RoPE), so the average is not any one of them
    assert (clip_tokens[:, :196] - want).norm() > 1e-3 * want.norm()
    assert adapter.mean_of_tokens == "mean"
    torch.testing.assert_close(tokens.mean(dim=1), adapter.embed(images)["mean"])


def test_full_size_token_grid_and_width():
    adapter = EchoJEPAL()
    assert adapter.token_grid == (14, 14) and adapter.token_dim == 1024
    assert adapter.reduced(2).token_grid == (14, 14)


def test_clip_length_changes_the_features(loaded):
    """Temporal RoPE: the same image as one tubelet or as two gives other tokens."""
    images = _images(1)
    one = loaded.embed(images)["mean"]
    loaded.num_frames = 4
    try:
        two = loaded.embed(images)["mean"]
    finally:
        loaded.num_frames = 2
    assert (one - two).norm() > 0.01 * one.norm()


def test_wrapper_prefixes_are_removed_like_their_evaluation(checkpoint):
    full = echojepa_encoder_state(checkpoint, "file")
    target = checkpoint["target_encoder"]
    assert sorted(full) == sorted(k.removeprefix("module.backbone.") for k in target)
    assert "blocks.0.attn.qkv.weight" in full and "norm.weight" in full
    for strip in ("module.", "module.backbone."):
        partial = {"target_encoder": {k.removeprefix(strip): v for k, v in target.items()}}
        assert echojepa_encoder_state(partial, "file").keys() == full.keys()


def test_checkpoint_without_target_encoder_is_an_error(checkpoint):
    only_online = {"encoder": checkpoint["encoder"], "epoch": 55}
    with pytest.raises(UserError, match="no 'target_encoder'.*encoder.*epoch"):
        echojepa_encoder_state(only_online, "ckpt.pt")
    flat = dict(checkpoint["target_encoder"])
    with pytest.raises(UserError, match="no 'target_encoder'"):
        echojepa_encoder_state(flat, "flat.pt")


def test_duplicate_names_after_prefix_removal_are_an_error():
    weight = torch.zeros(1)
    state = {"target_encoder": {"module.backbone.norm.weight": weight, "norm.weight": weight}}
    with pytest.raises(UserError, match="twice"):
        echojepa_encoder_state(state, "ckpt.pt")


def test_without_weights_the_user_is_told_where_to_get_the_file():
    with pytest.raises(UserError, match=rf"drive\.google\.com.*{FILE_NAME}.*--weights"):
        EchoJEPAL().reduced(1).load()
