"""URFM: the EMA encoder is the one loaded (over `model`, with or without `module.`), and the
hub download goes through huggingface_hub."""

import shutil
from pathlib import Path

import pytest
import timm
import torch

from model_zoo.urfm import FILE_VITB16, FILE_VITL16, HUB_REPO, URFM, URFMLarge
from ultrabench_eval.core.config import cache_root
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout

DEPTH = 2


@pytest.fixture(scope="module")
def training_file(tmp_path_factory):
    """A reduced file holding both online ('model', module.-prefixed) and EMA weights, which the
    layout fills with different random values."""
    layout = CheckpointLayout.load("urfm-vitb16-train").reduced(DEPTH)
    checkpoint = layout.random_checkpoint(seed=4)
    path = tmp_path_factory.mktemp("urfm") / layout.file_name
    torch.save(checkpoint, path)
    return path, checkpoint


def _images(n=3):
    generator = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (n, 1, 50, 44), generator=generator, dtype=torch.uint8)


def _reference_features(state: dict, x: torch.Tensor) -> torch.Tensor:
    """timm's ViT-B/16 with `state`'s encoder loaded by hand (prefix and decoder removed)."""
    encoder = {
        k.removeprefix("module."): v
        for k, v in state.items()
        if not k.removeprefix("module.").startswith(("decoder_", "mask_token"))
    }
    model = timm.create_model("vit_base_patch16_224", depth=DEPTH, num_classes=0)
    model.load_state_dict(encoder, strict=True)
    with torch.no_grad():
        return model.eval().forward_features(x)


def test_ema_weights_are_preferred_over_model(training_file):
    path, checkpoint = training_file
    adapter = URFM().reduced(DEPTH).load(str(path))
    images = _images()
    out = adapter.embed(images)
    x = adapter.preprocess(images)
    ema = _reference_features(checkpoint["ema_state_dict"], x)
    online = _reference_features(checkpoint["model"], x)
    torch.testing.assert_close(out["cls"], ema[:, 0])
    torch.testing.assert_close(out["mean"], ema[:, 1:].mean(dim=1))
    assert not torch.allclose(out["cls"], online[:, 0], atol=1e-4)
    assert adapter.default_pooling == "cls"


def test_module_prefix_and_released_layout_give_the_same_encoder(training_file, tmp_path):
    _, checkpoint = training_file
    ema = checkpoint["ema_state_dict"]
    plain = tmp_path / "plain.pth"
    torch.save({"model": "mae_vit_base_patch16_dec768d8b", "ema_state_dict": ema}, plain)
    ddp = tmp_path / "ddp.pth"
    prefixed = {f"module.{k}": v for k, v in ema.items()}
    torch.save({"model": "mae_vit_base_patch16_dec768d8b", "ema_state_dict": prefixed}, ddp)
    images = _images()
    a = URFM().reduced(DEPTH).load(str(plain)).embed(images)
    b = URFM().reduced(DEPTH).load(str(ddp)).embed(images)
    for pooling in a:
        torch.testing.assert_close(a[pooling], b[pooling], rtol=0, atol=0)


def test_without_ema_weights_the_file_is_rejected(training_file):
    _, checkpoint = training_file
    with pytest.raises(UserError, match="not a URFM checkpoint"):
        URFM().convert_checkpoint({"model": "mae_vit_base_patch16_dec768d8b", "epoch": 1}, "f")
    # a plain MAE-style {'model': state_dict} still maps (decoder dropped, module. stripped)
    state = URFM().reduced(DEPTH).convert_checkpoint({"model": checkpoint["model"]}, "f")
    assert "cls_token" in state and not any(k.startswith("decoder_") for k in state)


def test_download_from_the_hub(training_file, monkeypatch):
    import huggingface_hub

    path, _ = training_file
    calls = []

    commit = "c0ffee" * 6 + "c0ff"

    def fake_download(repo_id, filename, revision=None, cache_dir=None, **kwargs):
        calls.append((repo_id, filename, revision, cache_dir))
        # huggingface_hub's cache layout, which names the commit the file came from
        snapshot = Path(cache_dir, "models--QingboKang--URFM", "snapshots", commit, filename)
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, snapshot)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    adapter = URFM().reduced(DEPTH).load()
    (repo_id, filename, revision, cache_dir), *_ = calls
    assert (repo_id, filename, revision) == (HUB_REPO, FILE_VITB16, None)
    assert Path(cache_dir) == cache_root() / "weights"
    assert adapter.weights_id().startswith(f"hf-hub:{HUB_REPO}/{FILE_VITB16}@{commit}:sha256=")
    direct = URFM().reduced(DEPTH).load(str(path))
    images = _images(1)
    torch.testing.assert_close(adapter.embed(images)["cls"], direct.embed(images)["cls"])


def test_unreachable_hub_is_a_user_error(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("no network\nsecond line")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(UserError, match=r"cannot download hf-hub:QingboKang/URFM/.*--weights FILE"):
        URFM().load()


def test_metadata_marks_what_is_unverified():
    adapter = URFM()
    info = adapter.info
    assert info.weights_source == f"hf-hub:{HUB_REPO}/{FILE_VITB16}"
    assert "UNVERIFIED" in info.notes and "unverified" in info.license
    assert info.params == CheckpointLayout.load("urfm-vitb16").parameter_count()
    spec = adapter.input_spec
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)


def test_large_variant():
    adapter = URFMLarge()
    assert adapter.hub_file == FILE_VITL16 and adapter.layouts == ("urfm-vitl16",)
    assert adapter.embed_dims == {"cls": 1024, "mean": 1024}
    assert adapter.info.params == CheckpointLayout.load("urfm-vitl16").parameter_count()


def test_tokens_are_the_ema_encoders_normed_patch_tokens(training_file):
    path, checkpoint = training_file
    adapter = URFM().reduced(DEPTH).load(str(path))
    images = _images()
    tokens, grid = adapter.embed_tokens(images)
    reference = _reference_features(checkpoint["ema_state_dict"], adapter.preprocess(images))
    assert grid == adapter.token_grid == (14, 14) and tokens.shape == (3, 196, 768)
    torch.testing.assert_close(tokens, reference[:, 1:])
    assert adapter.mean_of_tokens == "mean"
    assert URFM().token_grid == (14, 14) and URFM().token_dim == 768  # full size: 224 / 16
    assert URFMLarge().token_grid == (14, 14) and URFMLarge().token_dim == 1024
