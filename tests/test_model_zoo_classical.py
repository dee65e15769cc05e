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
