"""USFM: USFM_latest.pth maps onto timm's Beit, and the default pooling is the one USFM's own
classifier computes (per-block copies of the shared bias, no final norm, fresh fc_norm)."""

import pytest
import torch
from timm.models.beit import Beit

from model_zoo.usfm import USFM, WEIGHTS_URL
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout

DEPTH = 2


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    layout = CheckpointLayout.load("usfm-vitb16").reduced(DEPTH)
    state = layout.random_checkpoint(seed=5)
    # the file's index is the BEiT constant; random ints would not be a real file
    state["rel_pos_bias.relative_position_index"] = _beit_index(14)
    path = tmp_path_factory.mktemp("usfm") / layout.file_name
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def adapter(official):
    return USFM().reduced(DEPTH).load(str(official[0]))


def _images(n=3):
    generator = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (n, 1, 48, 60), generator=generator, dtype=torch.uint8)


def _beit_index(grid: int) -> torch.Tensor:
    """BEiT's relative position index, from its definition: patch pairs index a
    (2g-1) x (2g-1) table of offsets; then one entry each for cls->patch, patch->cls, cls->cls."""
    side = 2 * grid - 1
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    patches = (rows[:, None] - rows[None] + grid - 1) * side + (
        cols[:, None] - cols[None] + grid - 1
    )
    index = torch.empty(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    index[1:, 1:] = patches
    index[0, :] = side * side
    index[:, 0] = side * side + 1
    index[0, 0] = side * side + 2
    return index


def _usfm_classifier(state: dict) -> Beit:
    """The encoder as usdsgen's classification config builds it (use_rel_pos_bias=True,
    use_shared_rel_pos_bias=False, use_mean_pooling=True) and loads USFM_latest.pth:
    remap_pretrained_keys_vit copies the shared table into every block, the final norm is
    replaced by identity (its weights are not loaded), fc_norm keeps its initialisation."""
    model = Beit(
        embed_dim=768,
        depth=DEPTH,
        num_heads=12,
        qkv_bias=True,
        init_values=0.1,
        use_abs_pos_emb=False,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        num_classes=0,
        global_pool="avg",
    )
    remapped = {
        k: v
        for k, v in state.items()
        if not k.startswith(("rel_pos_bias.", "norm.")) and k != "mask_token"
    }
    for i in range(DEPTH):
        table = state["rel_pos_bias.relative_position_bias_table"].clone()
        remapped[f"blocks.{i}.attn.relative_position_bias_table"] = table
    remapped["fc_norm.weight"] = torch.ones(768)
    remapped["fc_norm.bias"] = torch.zeros(768)
    model.load_state_dict(remapped, strict=True)
    return model.eval()


def test_mean_pooling_is_usfms_classifier_pooling(official, adapter):
    _, state = official
    images = _images()
    out = adapter.embed(images)
    with torch.no_grad():
        reference = _usfm_classifier(state)
        x = adapter.preprocess(images)
        pooled = reference.forward_head(reference.forward_features(x), pre_logits=True)
    torch.testing.assert_close(out["mean"], pooled)
    assert adapter.default_pooling == "mean"


def test_cls_pooling_uses_the_pretrained_final_norm(official, adapter):
    _, state = official
    images = _images()
    shared = Beit(
        embed_dim=768,
        depth=DEPTH,
        num_heads=12,
        qkv_bias=True,
        init_values=0.1,
        use_abs_pos_emb=False,
        use_shared_rel_pos_bias=True,
        num_classes=0,
        global_pool="token",
    )
    shared.load_state_dict(adapter.convert_checkpoint(state, "f"), strict=True)
    with torch.no_grad():
        tokens = shared.eval().forward_features(adapter.preprocess(images))
    torch.testing.assert_close(adapter.embed(images)["cls"], tokens[:, 0])


def test_tokens_are_the_normed_patch_tokens_of_timms_beit(official, adapter):
    _, state = official
    images = _images()
    shared = Beit(
        embed_dim=768,
        depth=DEPTH,
        num_heads=12,
        qkv_bias=True,
        init_values=0.1,
        use_abs_pos_emb=False,
        use_shared_rel_pos_bias=True,
        num_classes=0,
        global_pool="token",
    )
    shared.load_state_dict(adapter.convert_checkpoint(state, "f"), strict=True)
    with torch.no_grad():
        sequence = shared.eval().forward_features(adapter.preprocess(images))  # final norm
    tokens, grid = adapter.embed_tokens(images)
    assert grid == adapter.token_grid == (14, 14) and tokens.shape == (3, 196, 768)
    torch.testing.assert_close(tokens, sequence[:, 1:])
    # `mean` is fc_norm(mean of the un-normed tokens), not the mean of these
    assert adapter.mean_of_tokens is None
    assert not torch.allclose(tokens.mean(dim=1), adapter.embed(images)["mean"], atol=1e-3)


def test_full_size_token_grid_and_width():
    adapter = USFM()
    assert adapter.token_grid == (14, 14) and adapter.token_dim == 768
    assert adapter.meta_model().patch_embed.grid_size == (14, 14)


def test_relative_position_index_is_beits(adapter):
    index = adapter.model.rel_pos_bias.relative_position_index
    torch.testing.assert_close(index, _beit_index(14), rtol=0, atol=0)


def test_mask_token_and_index_are_dropped(official, adapter):
    _, state = official
    converted = adapter.convert_checkpoint(state, "f")
    assert "mask_token" not in converted
    assert "rel_pos_bias.relative_position_index" not in converted
    assert set(converted) == set(adapter.model.state_dict())


def test_other_files_are_rejected(official):
    _, state = official
    per_block = {k: v for k, v in state.items() if not k.startswith("rel_pos_bias.")}
    with pytest.raises(UserError, match="not USFM_latest.pth"):
        USFM().convert_checkpoint(per_block, "ckpt.pth")
    with pytest.raises(UserError, match="not USFM_latest.pth"):
        USFM().convert_checkpoint({"model": state}, "ckpt.pth")


def test_metadata():
    adapter = USFM()
    assert adapter.poolings == ("mean", "cls")
    assert adapter.embed_dims == {"mean": 768, "cls": 768}
    spec = adapter.input_spec
    assert (spec.size, spec.interpolation) == ((224, 224), "bicubic")
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    layout = CheckpointLayout.load("usfm-vitb16")
    assert adapter.info.params == layout.parameter_count()
    with pytest.raises(UserError, match="--weights") as error:
        adapter.load()
    assert WEIGHTS_URL in str(error.value)
