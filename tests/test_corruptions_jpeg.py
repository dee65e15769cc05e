"""JPEG in torch: the IJG tables, the DCT, and the round trip against PIL's encoder."""

import io

import numpy as np
import pytest
import torch
from corruption_batches import batch
from PIL import Image

from ultrabench_eval.corruptions.jpeg import (
    LUMINANCE_TABLE,
    JpegCompression,
    dct_matrix,
    jpeg_round_trip,
    quantisation_table,
)


def test_quantisation_tables_scale_as_libjpeg():
    assert quantisation_table(50).tolist() == [list(map(float, row)) for row in LUMINANCE_TABLE]
    assert quantisation_table(100).unique().tolist() == [1.0]
    assert quantisation_table(1).max() == 255  # baseline: clipped
    assert quantisation_table(10)[0, 0] == (16 * 500 + 50) // 100
    with pytest.raises(ValueError):
        quantisation_table(0)


def test_dct_is_orthonormal():
    d = dct_matrix()
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64))


def _pil_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


@pytest.mark.parametrize("quality", [90, 50, 20, 5])
def test_round_trip_matches_pils_encoder(quality):
    """libjpeg's integer DCT rounds a coefficient the other way now and then (which changes its
    whole 8x8 block): the two decoded images differ by a small fraction of what compression
    changes, and in few pixels by more than 2 levels."""
    images, _, _ = batch(2, size=69)  # not a multiple of 8: padded like libjpeg
    for i in range(2):
        original = images[i, 0].numpy()
        theirs = _pil_round_trip(original, quality).astype(np.float64)
        x = torch.from_numpy(original / 255.0).float()[None, None]
        ours = (jpeg_round_trip(x, quality)[0, 0] * 255).round().numpy()
        change = np.abs(theirs - original).mean()
        difference = np.abs(ours - theirs)
        assert difference.mean() < 0.2 * change
        assert (difference > 2).mean() < 0.05


def test_lower_quality_changes_more():
    images, masks, _ = batch(3, size=64)
    x = images.float() / 255
    changes = [
        float((JpegCompression().apply(x, masks.bool(), s, []) - x).abs().mean())
        for s in range(1, 6)
    ]
    assert changes == sorted(changes)
