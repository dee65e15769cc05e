import numpy as np
import pytest
import torch
from skimage.feature import hog as skimage_hog

from model_zoo.classical import HogAdapter, PixelsAdapter, hog
from ultrabench_eval.core.errors import UserError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hog_matches_scikit_image(seed):
    rng = np.random.default_rng(seed)
    # smooth structure plus noise, so every orientation bin gets votes
    yy, xx = np.mgrid[0:64, 0:64]
    image = (
        0.5 + 0.3 * np.sin(xx / (3 + seed)) * np.cos(yy / 5) + 0.1 * rng.standard_normal((64, 64))
    )
    expected = skimage_hog(
        image,
        orientations=9,
        pixels_per_cell=(16, 16),
        cells_per_block=(2, 2),
        block_norm="L2-Hys",
        feature_vector=True,
    )
    ours = hog(torch.from_numpy(image)[None], 9, 16, 2)[0].double().numpy()
    assert ours.shape == expected.shape == (3 * 3 * 2 * 2 * 9,)
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_hog_adapter_shape_and_determinism():
    adapter = HogAdapter().load()
    images = torch.randint(0, 256, (3, 1, 100, 90), dtype=torch.uint8)
    first = adapter.embed(images)["hog"]
    assert first.shape == (3, 1764) and first.dtype == torch.float32
    assert torch.equal(first, adapter.embed(images)["hog"])
    assert torch.equal(first[1], adapter.embed(images[1:2])["hog"][0])


def test_pixels_are_area_downsampled_intensities():
    adapter = PixelsAdapter().load()
    images = torch.zeros((1, 1, 64, 64), dtype=torch.uint8)
    images[:, :, :32, :] = 255
    raw = adapter.embed(images)["raw"].reshape(32, 32)
    assert torch.all(raw[:16] == 1.0) and torch.all(raw[16:] == 0.0)


def test_weight_free_models_refuse_weights():
    with pytest.raises(UserError, match="has no weights"):
        PixelsAdapter().load("x.pth")


def test_hog_tokens_are_the_descriptor_s_blocks_in_place():
    adapter = HogAdapter().load()
    images = torch.randint(0, 256, (2, 1, 100, 90), dtype=torch.uint8)
    tokens, grid = adapter.embed_tokens(images)
    assert grid == (7, 7) and tokens.shape == (2, 49, 36)
    assert torch.equal(tokens.flatten(1), adapter.embed(images)["hog"])


def test_pixel_tokens_are_4x4_patches_row_major():
    adapter = PixelsAdapter().load()
    images = torch.zeros((1, 1, 32, 32), dtype=torch.uint8)
    images[:, :, 4:8, 8:12] = 255  # the patch in grid row 1, column 2
    tokens, grid = adapter.embed_tokens(images)
    assert grid == (8, 8) and tokens.shape == (1, 64, 16)
    lit = (tokens[0] == 1.0).all(dim=1).nonzero().flatten().tolist()
    assert lit == [1 * 8 + 2] and tokens[0].sum() == 16
