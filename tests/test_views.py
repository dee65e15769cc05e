import pytest
import torch

from ultrabench_eval.errors import UserError
from ultrabench_eval.views import View


def _batch(n=4, size=24):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(20, 230, (n, 1, size, size), generator=g, dtype=torch.uint8)
    masks = torch.zeros((n, 1, size, size), dtype=torch.uint8)
    masks[:, :, 4:20, 6:18] = 1
    return images, masks, [f"img{i}.png" for i in range(n)]


def test_parse():
    assert View.parse("clean").is_clean
    view = View.parse("gaussian-noise:3", seed=1)
    assert view.name == "gaussian-noise-s3-seed1"
    with pytest.raises(UserError, match="severities 1..5"):
        View.parse("contrast:9")
    with pytest.raises(UserError, match="unknown corruption"):
        View.parse("sparkle:1")
    with pytest.raises(UserError, match="must be 'clean'"):
        View.parse("contrast")


@pytest.mark.parametrize("spec", ["gaussian-noise:4", "contrast:5"])
def test_outside_the_mask_is_untouched_and_inside_changes(spec):
    images, masks, ids = _batch()
    out = View.parse(spec).apply(images, masks, ids)
    outside = masks == 0
    assert torch.equal(out[outside], images[outside])
    assert not torch.equal(out[~outside], images[~outside])


def test_same_image_same_noise_whatever_the_batch():
    images, masks, ids = _batch()
    view = View.parse("gaussian-noise:2")
    whole = view.apply(images, masks, ids)
    alone = view.apply(images[2:3], masks[2:3], ids[2:3])
    assert torch.equal(whole[2:3], alone)
    other_seed = View.parse("gaussian-noise:2", seed=5).apply(images, masks, ids)
    assert not torch.equal(whole, other_seed)


def test_contrast_depletion_pulls_towards_the_in_mask_median():
    images, masks, ids = _batch(1)
    out = View.parse("contrast:3").apply(images, masks, ids).float()
    inside = masks.bool()
    median = (images.float() / 255)[inside].median() * 255
    spread_before = float((images.float()[inside] - median).abs().mean())
    spread_after = float((out[inside] - median).abs().mean())
    assert spread_after == pytest.approx(0.5 * spread_before, rel=0.02)
