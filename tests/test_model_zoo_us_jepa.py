"""US-JEPA / USrc-JEPA: the STUDENT `encoder` of an I-JEPA-style training checkpoint is the
evaluated encoder (not the teacher slot `target_encoder`), a flat timm-layout file gives the same
features, and without a file the user is told the weights are not public."""

import pytest
import torch
from test_model_zoo_ijepa import jepa_reference_features, jepa_reference_tokens

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.layouts import CheckpointLayout


def images(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 1, 64, 80), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def training_file(tmp_path_factory):
    layout = CheckpointLayout.load("us-jepa-train").reduced(1)
    path = layout.build(tmp_path_factory.mktemp("usjepa") / layout.file_name, seed=11)
    return path, torch.load(path, weights_only=True)


@pytest.mark.parametrize("name", ["us-jepa", "usrc-jepa"])
def test_student_encoder_is_evaluated_not_the_teacher_slot(name, training_file):
    path, checkpoint = training_file
    adapter = make_adapter(name).reduced(1).load(str(path))
    batch = images()
    got = adapter.embed(batch)["mean"]
    x = adapter.preprocess(batch)
    student = jepa_reference_features(checkpoint["encoder"], x, patch=16, heads=12)
    teacher_slot = jepa_reference_features(checkpoint["target_encoder"], x, patch=16, heads=12)
    torch.testing.assert_close(got, student, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, teacher_slot, rtol=1e-2, atol=1e-4)
    assert adapter.info.extra["checkpoint_entry"] == "encoder"


@pytest.mark.parametrize("name", ["us-jepa", "usrc-jepa"])
def test_tokens_are_the_students_final_normed_tokens(name, training_file):
    path, checkpoint = training_file
    adapter = make_adapter(name).reduced(1).load(str(path))
    batch = images()
    tokens, grid = adapter.embed_tokens(batch)
    want = jepa_reference_tokens(
        checkpoint["encoder"], adapter.preprocess(batch), patch=16, heads=12
    )
    assert grid == adapter.token_grid == (14, 14) and adapter.token_dim == 768
    assert tokens.shape == want.shape == (2, 196, 768)
    torch.testing.assert_close(tokens, want, rtol=1e-4, atol=1e-4)
    assert adapter.mean_of_tokens == "mean"


def test_flat_timm_layout_gives_the_same_features(training_file, tmp_path):
    path, checkpoint = training_file
    flat = tmp_path / "student.pth"
    torch.save(dict(checkpoint["encoder"]), flat)  # keeps the DDP 'module.' prefix
    batch = images()
    a = make_adapter("us-jepa").reduced(1).load(str(path)).embed(batch)["mean"]
    b = make_adapter("us-jepa").reduced(1).load(str(flat)).embed(batch)["mean"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_without_student_is_an_error(training_file, tmp_path):
    _, checkpoint = training_file
    path = tmp_path / "teacher-only.pth.tar"
    torch.save({"target_encoder": checkpoint["target_encoder"], "epoch": 3}, path)
    with pytest.raises(UserError, match="'encoder' state dict"):
        make_adapter("us-jepa").reduced(1).load(str(path))


def test_weights_are_not_public():
    adapter = make_adapter("us-jepa")
    assert adapter.info.weights_source.startswith("not public:")
    with pytest.raises(UserError, match="cannot be downloaded.*--weights"):
        adapter.load()


def test_architecture_is_ijepa_vit_b16():
    adapter = make_adapter("usrc-jepa")
    model = adapter.meta_model()
    # timm's registered vit_base_patch16_gap_224 has 16 heads; I-JEPA's vit_base has 12
    assert model.blocks[0].attn.num_heads == 12
    assert model.num_prefix_tokens == 0 and tuple(model.pos_embed.shape) == (1, 196, 768)
    assert adapter.info.params == 85_797_120
    assert adapter.poolings == ("mean",) and adapter.embed_dims == {"mean": 768}
    assert adapter.input_spec.size == (224, 224) and adapter.input_spec.channels == 3
    assert adapter.token_grid == tuple(model.patch_embed.grid_size) == (14, 14)
    assert adapter.token_dim == 768
