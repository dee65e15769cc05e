"""RadJEPA: the hub file's `encoder` entry loads into an I-JEPA ViT-B/14 (patch 14, 256 tokens,
12 heads) whose features equal the I-JEPA forward; prefixed and wrapped variants load the same;
downloads go through huggingface_hub."""

import huggingface_hub
import pytest
import torch
from test_model_zoo_ijepa import jepa_reference_features, jepa_reference_tokens

from ultrabench_eval.core.config import cache_root
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.layouts import CheckpointLayout


def images(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (n, 1, 50, 70), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def hub_file(tmp_path_factory):
    layout = CheckpointLayout.load("radjepa-hf").reduced(1)
    path = layout.build(tmp_path_factory.mktemp("radjepa") / layout.file_name, seed=7)
    return path, torch.load(path, weights_only=True)


def test_hub_file_matches_the_reference_forward(hub_file):
    path, checkpoint = hub_file
    adapter = make_adapter("radjepa").reduced(1).load(str(path))
    batch = images()
    x = adapter.preprocess(batch)
    assert x.shape == (2, 3, 224, 224)
    want = jepa_reference_features(checkpoint["encoder"], x, patch=14, heads=12)
    torch.testing.assert_close(adapter.embed(batch)["mean"], want, rtol=1e-4, atol=1e-5)
    assert tuple(adapter.model.pos_embed.shape) == (1, 256, 768)


def test_tokens_match_the_reference_forward(hub_file):
    path, checkpoint = hub_file
    adapter = make_adapter("radjepa").reduced(1).load(str(path))
    batch = images()
    tokens, grid = adapter.embed_tokens(batch)
    want = jepa_reference_tokens(
        checkpoint["encoder"], adapter.preprocess(batch), patch=14, heads=12
    )
    assert grid == adapter.token_grid == (16, 16) and adapter.token_dim == 768
    assert tokens.shape == want.shape == (2, 256, 768)
    torch.testing.assert_close(tokens, want, rtol=1e-4, atol=1e-4)
    assert adapter.mean_of_tokens == "mean"


@pytest.mark.parametrize("variant", ["ddp-prefix", "state_dict-wrapped"])
def test_prefixed_and_wrapped_files_load_the_same(variant, hub_file, tmp_path):
    path, checkpoint = hub_file
    encoder = checkpoint["encoder"]
    if variant == "ddp-prefix":
        other = {"encoder": {f"module.{k}": v for k, v in encoder.items()}, "epoch": 1}
    else:
        other = {"state_dict": {"encoder": encoder}}
    other_path = tmp_path / "other.pth.tar"
    torch.save(other, other_path)
    batch = images(1)
    a = make_adapter("radjepa").reduced(1).load(str(path)).embed(batch)["mean"]
    b = make_adapter("radjepa").reduced(1).load(str(other_path)).embed(batch)["mean"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_pretrained_weights_come_from_the_hub(monkeypatch, hub_file):
    path, _ = hub_file
    asked = []

    def fake_download(repo_id, filename, cache_dir=None, **kwargs):
        asked.append((repo_id, filename, cache_dir))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    adapter = make_adapter("radjepa").reduced(1).load()
    weights = str(cache_root() / "weights")
    assert asked == [("AIDElab-IITBombay/RadJEPA", "jepa_encoder.pth.tar", weights)]
    assert adapter.weights_id().startswith(
        "hf-hub:AIDElab-IITBombay/RadJEPA/jepa_encoder.pth.tar:sha256="
    )


def test_unreachable_hub_is_a_user_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(UserError, match="RadJEPA.*--weights FILE"):
        make_adapter("radjepa").load()


def test_full_size_is_vit_b14():
    adapter = make_adapter("radjepa")
    model = adapter.meta_model()
    assert adapter.info.params == 85_704_960
    assert model.patch_embed.proj.kernel_size == (14, 14)
    assert model.blocks[0].attn.num_heads == 12 and len(model.blocks) == 12
    assert model.num_prefix_tokens == 0
    assert adapter.token_grid == tuple(model.patch_embed.grid_size) == (16, 16)
    assert adapter.token_dim == 768
