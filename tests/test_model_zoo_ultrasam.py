"""UltraSam (model_zoo/ultrasam.py): the mmdet checkpoint's backbone is mapped onto the SAM
encoder exactly, the rest of the detector is dropped, the default pooling is UltraSam's own
classification read-out, and the weights download is cached and fails clearly."""

import pytest
import torch

from model_zoo.sam import NECK_MEAN, PRENECK_MEAN, SamViTB, kept_blocks, renumber_blocks
from model_zoo.ultrasam import ULTRASAM_URL, UltraSam
from ultrabench_eval.core.config import cache_root
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout


def _sam_to_mmdet_backbone(official):
    """The renames of UltraSam's weights/convert_sam_bb_to_mmdet.py, applied to segment_anything
    `image_encoder.*` keys: blocks -> layers, patch_embed.proj -> .projection, norm -> ln,
    neck -> channel_reduction, mlp.lin1 -> ffn.layers.0.0, mlp.lin2 -> ffn.layers.1."""
    out = {}
    for key, value in official.items():
        key = key.removeprefix("image_encoder.")
        key = key.replace("blocks.", "layers.").replace(
            "patch_embed.proj", "patch_embed.projection"
        )
        key = key.replace("norm", "ln").replace("neck", "channel_reduction")
        key = key.replace("mlp.lin1", "ffn.layers.0.0").replace("mlp.lin2", "ffn.layers.1")
        out[f"backbone.{key}"] = value
    return out


def _official_encoder(seed):
    layout = renumber_blocks(CheckpointLayout.load("sam-vitb-official"), kept_blocks(2))
    generator = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(layout.tensors[k].shape, generator=generator) * 0.1
        for k in layout.used_keys()
    }


def _images():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (2, 1, 36, 44), generator=generator, dtype=torch.uint8)


def test_backbone_maps_exactly_onto_the_sam_encoder(tmp_path):
    official = _official_encoder(seed=1)
    sam_path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(official, sam_path)
    state = _sam_to_mmdet_backbone(official)
    # the rest of the detector must be dropped
    state["decoder.post_norm.weight"] = torch.ones(256)
    state["bbox_head.iou_prediction_head.layers.2.bias"] = torch.ones(4)
    state["prompt_encoder.label_encoder.label_embedding.weight"] = torch.ones(11, 256)
    ultra_path = tmp_path / "UltraSam.pth"
    torch.save({"state_dict": state, "meta": {"iter": 30000}}, ultra_path)

    images = _images()
    sam = SamViTB().reduced(2).load(str(sam_path)).embed(images)
    ultra = UltraSam().reduced(2).load(str(ultra_path)).embed(images)
    for pooling in (NECK_MEAN, PRENECK_MEAN):
        torch.testing.assert_close(ultra[pooling], sam[pooling], rtol=0, atol=0)
    # the tokens are SAM's: the neck output, the image embedding the mask decoder reads
    sam_tokens = SamViTB().reduced(2).load(str(sam_path)).embed_tokens(images)
    ultra_tokens = UltraSam().reduced(2).load(str(ultra_path)).embed_tokens(images)
    assert ultra_tokens.grid == sam_tokens.grid == (16, 16)  # reduced variants run at 256 px
    torch.testing.assert_close(ultra_tokens.tokens, sam_tokens.tokens, rtol=0, atol=0)
    torch.testing.assert_close(ultra_tokens.tokens.mean(dim=1), ultra[NECK_MEAN])


def test_metadata_and_default_pooling():
    adapter = UltraSam()
    # UltraSam's classification configs read ViTSAM with out_channels=0, out_type avg_featmap
    assert adapter.poolings == (PRENECK_MEAN, NECK_MEAN)
    assert adapter.embed_dims == {PRENECK_MEAN: 768, NECK_MEAN: 256}
    # tokens: the neck output on the 64 x 64 grid at 1024 px, averaged by 'mean' (not the default)
    assert (adapter.token_grid, adapter.token_dim) == ((64, 64), 256)
    assert adapter.mean_of_tokens == NECK_MEAN
    assert adapter.info.params == SamViTB().info.params
    spec = adapter.input_spec
    assert spec.size == (1024, 1024)
    # configs/_base_/models/sam.py data_preprocessor, on 0-255
    assert spec.mean == pytest.approx([123.675 / 255, 116.28 / 255, 103.53 / 255])
    assert spec.std == pytest.approx([58.395 / 255, 57.12 / 255, 57.375 / 255])
    assert "unverified" in adapter.info.notes


def test_other_files_are_user_errors(tmp_path):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(_official_encoder(seed=2), path)  # plain SAM is not UltraSam
    with pytest.raises(UserError, match="not an UltraSam checkpoint"):
        UltraSam().reduced(2).load(str(path))
    torch.save({"state_dict": {"backbone.layers.0.mystery": torch.zeros(2)}}, path)
    with pytest.raises(UserError, match="unexpected key 'layers.0.mystery'"):
        UltraSam().reduced(2).load(str(path))


def test_download_is_cached_and_failures_are_clear(tmp_path, monkeypatch):
    calls = []

    def unreachable(url, dst, **kwargs):
        calls.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(
        UserError, match=r"cannot download https://\S+/UltraSam.pth: OSError.*--weights"
    ):
        UltraSam().reduced(2).load()
    assert calls == [ULTRASAM_URL]

    # a file already in the cache is used as it is
    layout = UltraSam().reduced(2).checkpoint_layouts()[0]
    layout.build(cache_root() / "weights" / "ultrasam" / "UltraSam.pth")
    adapter = UltraSam().reduced(2).load()
    assert calls == [ULTRASAM_URL]
    assert adapter.weights_id().startswith(f"url:{ULTRASAM_URL}:sha256=")
    assert adapter.embed(_images())[PRENECK_MEAN].shape == (2, 768)


def _ultrasam_state(seed):
    return _sam_to_mmdet_backbone(_official_encoder(seed))


@pytest.mark.parametrize("keep_modules", [False, True])
def test_a_full_mmengine_runner_checkpoint_loads_without_running_its_code(tmp_path, keep_modules):
    """message_hub (HistoryBuffer, numpy), optimizer and schedulers beside the
    weights, as Runner.save_checkpoint writes them; with the stand-in classes importable or not,
    nothing of them is built."""
    from tests import mmengine_checkpoint

    plain, runner = tmp_path / "plain.pth", tmp_path / "UltraSam.pth"
    torch.save({"state_dict": _ultrasam_state(3), "meta": {"iter": 1}}, plain)
    mmengine_checkpoint.RAN_ON_LOAD.clear()
    try:
        mmengine_checkpoint.save_runner_checkpoint(runner, _ultrasam_state(3), keep_modules)
        images = _images()
        want = UltraSam().reduced(2).load(str(plain)).embed(images)
        got = UltraSam().reduced(2).load(str(runner)).embed(images)
    finally:
        mmengine_checkpoint.remove_stand_ins()
    assert mmengine_checkpoint.RAN_ON_LOAD == []
    for pooling in (NECK_MEAN, PRENECK_MEAN):
        torch.testing.assert_close(got[pooling], want[pooling], rtol=0, atol=0)


def test_a_runner_checkpoint_with_other_code_is_still_refused(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "UltraSam.pth"
    torch.save({"state_dict": _ultrasam_state(4), "message_hub": {"x": Payload()}}, path)
    with pytest.raises(UserError, match=r"refuses to build; no code from the file was run"):
        UltraSam().reduced(2).load(str(path))
