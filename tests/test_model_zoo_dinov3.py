"""DINOv3 adapters: the official, timm and transformers layouts give the same features as timm's
stock model loaded through timm's own conversion; the file's RoPE periods are used; qkv biases
that are not zero in effect are flagged; poolings leave the storage tokens out."""

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models.eva import checkpoint_filter_fn

from model_zoo.dinov3 import VARIANTS, dinov3_state
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.factory import make_adapter
from ultrabench_eval.models.layouts import CheckpointLayout

DEPTH = 2
NAME = "dinov3-vits16"


def _images(n=2):
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, 40, 52), generator=generator, dtype=torch.uint8)


def _official_state(seed: int = 1) -> dict:
    """A reduced official file with random values, qkv bias x bias_mask zero as released, and the
    RoPE periods DINOv3 computes (base 100, float32)."""
    state = CheckpointLayout.load("dinov3-vits16-pretrain").reduced(DEPTH).random_checkpoint(seed)
    for key, value in state.items():
        if key.endswith(("norm1.weight", "norm2.weight")) or key == "norm.weight":
            state[key] = value + 1.0
        elif key.endswith("gamma"):
            state[key] = value * 20
        elif key.endswith("bias_mask"):
            state[key] = torch.zeros_like(value)  # released files: mask and bias all zero
    head = 384 // 6
    state["rope_embed.periods"] = 100.0 ** (2 * torch.arange(head // 4) / (head // 2))
    return state


def _stock(state: dict):
    """timm's own DINOv3 model and its own conversion of the official file."""
    model = timm.create_model(VARIANTS[NAME].timm_name, depth=DEPTH, num_classes=0).eval()
    model.load_state_dict(checkpoint_filter_fn(dict(state), model), strict=True)
    return model


def _to_hf(timm_state: dict) -> dict:
    """timm names -> transformers DINOv3ViTModel names (the inverse of the adapter's mapping,
    written independently here), with zero q/v biases as the conversion leaves them."""
    out = {
        "embeddings.cls_token": timm_state["cls_token"],
        "embeddings.register_tokens": timm_state["reg_token"],
        "embeddings.mask_token": torch.zeros(1, 1, 384),
        "embeddings.patch_embeddings.weight": timm_state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.bias": timm_state["patch_embed.proj.bias"],
        "norm.weight": timm_state["norm.weight"],
        "norm.bias": timm_state["norm.bias"],
    }
    for i in range(DEPTH):
        b, layer = f"blocks.{i}.", f"layer.{i}."
        q, k, v = timm_state[b + "attn.qkv.weight"].chunk(3, dim=0)
        names = {
            "attention.q_proj.weight": q,
            "attention.k_proj.weight": k,
            "attention.v_proj.weight": v,
            "attention.q_proj.bias": torch.zeros(384),
            "attention.v_proj.bias": torch.zeros(384),
            "attention.o_proj.weight": timm_state[b + "attn.proj.weight"],
            "attention.o_proj.bias": timm_state[b + "attn.proj.bias"],
            "layer_scale1.lambda1": timm_state[b + "gamma_1"],
            "layer_scale2.lambda1": timm_state[b + "gamma_2"],
            "mlp.up_proj.weight": timm_state[b + "mlp.fc1.weight"],
            "mlp.up_proj.bias": timm_state[b + "mlp.fc1.bias"],
            "mlp.down_proj.weight": timm_state[b + "mlp.fc2.weight"],
            "mlp.down_proj.bias": timm_state[b + "mlp.fc2.bias"],
        }
        for norm in ("norm1", "norm2"):
            for p in ("weight", "bias"):
                names[f"{norm}.{p}"] = timm_state[f"{b}{norm}.{p}"]
        out.update({layer + k: v.contiguous() for k, v in names.items()})
    return out


def _to_hf5(hf_state: dict) -> dict:
    """transformers 5.x names: DINOv3ViTModel nests its blocks (`self.model =
    DINOv3ViTEncoder(config)`, its `.layer`), so a file it saves holds `model.layer.N.*`;
    embeddings.* and norm.* are unchanged (transformers 5.25 modeling_dinov3_vit.py)."""
    return {f"model.{k}" if k.startswith("layer.") else k: v for k, v in hf_state.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dinov3")
    state = _official_state()
    stock = _stock(state)
    timm_state = {k: v.contiguous() for k, v in stock.state_dict().items()}
    paths = {
        "official": folder / VARIANTS[NAME].official_file,
        "timm": folder / "timm" / "model.safetensors",
        "hf": folder / "hf" / "model.safetensors",
        "hf5": folder / "hf5" / "model.safetensors",
    }
    torch.save(state, paths["official"])
    hf = _to_hf(timm_state)
    for kind, tensors in (("timm", timm_state), ("hf", hf), ("hf5", _to_hf5(hf))):
        paths[kind].parent.mkdir()
        save_file(tensors, str(paths[kind]))
    return state, stock, paths


def _load(path):
    return make_adapter(NAME).reduced(DEPTH).load(str(path))


def test_every_layout_gives_timms_stock_features(files):
    _, stock, paths = files
    images = _images()
    adapters = {kind: _load(path) for kind, path in paths.items()}
    x = adapters["official"].preprocess(images)
    with torch.inference_mode():
        reference = stock.forward_features(x)
    for kind, adapter in adapters.items():
        with torch.inference_mode():
            tokens = adapter.model.forward_features(x)
        torch.testing.assert_close(tokens, reference, rtol=1e-6, atol=1e-6, msg=kind)


def test_poolings_exclude_storage_tokens(files):
    _, _, paths = files
    adapter = _load(paths["timm"])
    images = _images()
    out = adapter.embed(images)
    with torch.inference_mode():
        tokens = adapter.model.forward_features(adapter.preprocess(images))
    assert tokens.shape[1] == 1 + 4 + 16 * 16  # 256 px / 16
    torch.testing.assert_close(out["mean"], tokens[:, 5:].mean(1))
    torch.testing.assert_close(out["cls+mean"], torch.cat([tokens[:, 0], out["mean"]], 1))
    assert adapter.default_pooling == "cls+mean"


def test_tokens_are_the_reference_normed_patch_tokens(files):
    """Patch tokens = timm's stock model's final normed tokens without CLS and the 4 storage
    tokens (the official x_norm_patchtokens), row-major on the 16x16 grid; their mean is `mean`."""
    _, stock, paths = files
    adapter = _load(paths["official"])
    images = _images()
    tokens, grid = adapter.embed_tokens(images)
    with torch.inference_mode():
        reference = stock.forward_features(adapter.preprocess(images))
    assert grid == adapter.token_grid == (16, 16)
    assert tokens.shape == (2, 16 * 16, 384) and adapter.token_dim == 384
    torch.testing.assert_close(tokens, reference[:, 5:], rtol=1e-6, atol=1e-6)
    assert adapter.mean_of_tokens == "mean"
    torch.testing.assert_close(tokens.mean(1), adapter.embed(images)["mean"])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_full_size_token_grid_and_width(name):
    adapter = make_adapter(name)
    assert adapter.token_grid == (16, 16)  # 256 px / 16
    assert adapter.token_dim == VARIANTS[name].embed_dim
    model = adapter.meta_model()
    assert model.patch_embed.patch_size == (16, 16) and model.embed_dim == adapter.token_dim
    assert model.num_prefix_tokens == 5


def test_the_files_rope_periods_are_used(files, tmp_path):
    """The official model runs with the periods stored in its file (timm would recompute them):
    a file with bfloat16-rounded periods gives other features, through the adapter too."""
    state, _, paths = files
    rounded = dict(state)
    rounded["rope_embed.periods"] = state["rope_embed.periods"].bfloat16().float()
    path = tmp_path / "rounded.pth"
    torch.save(rounded, path)
    exact, coarse = _load(paths["official"]), _load(path)
    assert torch.equal(coarse.model.rope.periods, rounded["rope_embed.periods"])
    assert torch.equal(exact.model.rope.periods, state["rope_embed.periods"])
    images = _images()
    assert not torch.allclose(exact.embed(images)["cls"], coarse.embed(images)["cls"], atol=1e-6)


def test_effective_qkv_bias_is_refused():
    state = _official_state()
    state["blocks.1.attn.qkv.bias"] = torch.randn(3 * 384)  # masked out below: no effect
    assert dinov3_state(state, "zero.pth")[0]
    biased = dict(state)
    biased["blocks.1.attn.qkv.bias_mask"] = torch.ones(3 * 384)
    with pytest.raises(UserError, match=r"blocks\.1\.attn\.qkv\.bias is not zero in effect"):
        dinov3_state(biased, "biased.pth")


def test_broken_files_are_user_errors():
    state = _official_state()
    with pytest.raises(UserError, match="'blocks.0.ls1.scale'"):
        dinov3_state({**state, "blocks.0.ls1.scale": state["norm.weight"]}, "f.pth")
    hf = _to_hf({k: v for k, v in _stock(state).state_dict().items()})
    hf.pop("layer.1.attention.k_proj.weight")
    with pytest.raises(UserError, match=r"blocks\.1\.attn\.qkv\.weight needs query, key and value"):
        dinov3_state(hf, "hf.safetensors")


def test_input_spec_and_metadata():
    adapter = make_adapter("dinov3-vitl16")
    spec = adapter.input_spec
    assert spec.size == (256, 256) and spec.interpolation == "bilinear"
    assert adapter.embed_dims == {"cls+mean": 2048, "cls": 1024, "mean": 1024}
    assert adapter.info.params == CheckpointLayout.load("dinov3-vitl16-timm").parameter_count()
    assert "dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth" in adapter.info.weights_source


def test_no_network_is_a_user_error(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise OSError("unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    with pytest.raises(UserError, match="--weights FILE"):
        make_adapter(NAME).reduced(DEPTH).load()


def test_transformers5_names_map_onto_the_same_state(files):
    """a file re-saved by transformers 5.x (`model.layer.*`) is the same model
    as its transformers 4.56 copy, and its q/v bias is checked the same way."""
    _, stock, _ = files
    hf = _to_hf(dict(stock.state_dict()))
    want, _ = dinov3_state(hf, "hf.safetensors")
    got, _ = dinov3_state(_to_hf5(hf), "hf5.safetensors")
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    biased = _to_hf5({**hf, "layer.0.attention.q_proj.bias": torch.ones(384)})
    with pytest.raises(UserError, match="model.layer.0.attention.q_proj.bias|not zero"):
        dinov3_state(biased, "hf5.safetensors")
