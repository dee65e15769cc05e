"""MAE ViT-B/16: the encoder of a pre-training checkpoint gives timm's ViT-B/16 tokens."""

import timm
import torch

from model_zoo.mae import MAEViTB16
from ultrabench_eval.models.layouts import CheckpointLayout

DEPTH = 2


def test_tokens_are_the_encoders_normed_patch_tokens(tmp_path):
    layout = CheckpointLayout.load("mae-vitb16-pretrain").reduced(DEPTH)
    checkpoint = layout.random_checkpoint(seed=5)
    path = tmp_path / layout.file_name
    torch.save(checkpoint, path)
    adapter = MAEViTB16().reduced(DEPTH).load(str(path))
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (2, 1, 40, 60), generator=generator, dtype=torch.uint8)
    tokens, grid = adapter.embed_tokens(images)
    state = adapter.convert_checkpoint(checkpoint, "file")
    model = timm.create_model("vit_base_patch16_224", depth=DEPTH, num_classes=0)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        reference = model.eval().forward_features(adapter.preprocess(images))
    assert grid == adapter.token_grid == (14, 14) and tokens.shape == (2, 196, 768)
    torch.testing.assert_close(tokens, reference[:, 1:])
    torch.testing.assert_close(adapter.embed(images)["mean"], tokens.mean(dim=1))
    assert adapter.mean_of_tokens == "mean"
    assert MAEViTB16().token_grid == (14, 14) and MAEViTB16().token_dim == 768  # 224 / 16
