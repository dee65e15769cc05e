"""Views: clean or corrupted images, inside the scan mask, the same whatever the batch; and the
properties every registered corruption must have."""

import itertools

import pytest
import torch
from corruption_batches import batch

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions import views
from ultrabench_eval.corruptions.base import frozen
from ultrabench_eval.corruptions.intensity import GaussianNoise
from ultrabench_eval.corruptions.views import View

ALL = CORRUPTIONS.names()
# corruptions that draw nothing: the same image whatever the seed
DETERMINISTIC = {"attenuation", "blur", "contrast", "jpeg", "us-jepa-blur", "us-jepa-contrast"}


def test_parse_names_and_labels():
    assert View.parse("clean").is_clean and View.parse("clean").name == "clean"
    view = View.parse("gaussian-noise:3", seed=1)
    assert view.label == "gaussian-noise-s3-seed1" and view.spec == "gaussian-noise:3"
    assert view.name.startswith("gaussian-noise-s3-seed1-") and len(view.name.split("-")[-1]) == 8
    assert View.parse("speckle:2").label == "speckle-s2"  # seed 0 left out of the label
    with pytest.raises(UserError, match="severities 1..5"):
        View.parse("contrast:9")
    with pytest.raises(UserError, match="unknown corruption"):
        View.parse("sparkle:1")
    with pytest.raises(UserError, match="must be 'clean'"):
        View.parse("contrast")


def test_composition_parses_and_checks_every_part():
    view = View.parse("speckle+shadow:3")
    assert view.parts == ["speckle", "shadow"] and view.label == "speckle+shadow-s3"
    assert set(view.parameters()) == {"speckle", "shadow"}
    with pytest.raises(UserError, match="'us-jepa-blur' has severities 1..3, not 4"):
        View.parse("speckle+us-jepa-blur:4")
    with pytest.raises(UserError, match="unknown corruption 'sparkle'"):
        View.parse("speckle+sparkle:1")


def test_cache_name_changes_with_the_corruptions_parameters(monkeypatch):
    before = View.parse("gaussian-noise:2").name
    monkeypatch.setattr(GaussianNoise, "table", frozen({"sigma": (0.1,) * 5}))
    after = View.parse("gaussian-noise:2").name
    assert before != after and View.parse("gaussian-noise:2").label == "gaussian-noise-s2"


def _mean_change(view, images, masks, ids):
    out = view.apply(images, masks, ids).float()
    inside = masks.bool()
    return float((out - images.float())[inside].abs().mean())


@pytest.mark.parametrize("name", ALL)
def test_outside_the_mask_is_untouched_dtype_and_shape_kept(name):
    images, masks, ids = batch(4, size=64)
    top = CORRUPTIONS.get(name).max_severity
    out = View.parse(f"{name}:{top}").apply(images, masks, ids)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    outside = masks == 0
    assert torch.equal(out[outside], images[outside])
    assert not torch.equal(out[~outside], images[~outside])


@pytest.mark.parametrize("name", ALL)
def test_same_image_same_corruption_whatever_the_batch(name, monkeypatch):
    images, masks, ids = batch(5, size=64)
    view = View.parse(f"{name}:2")
    whole = view.apply(images, masks, ids)
    assert torch.equal(whole, view.apply(images, masks, ids))  # reproducible
    alone = view.apply(images[3:4], masks[3:4], ids[3:4])
    assert torch.equal(whole[3:4], alone)
    reordered = view.apply(images.flip(0), masks.flip(0), ids[::-1])
    assert torch.equal(reordered.flip(0), whole)
    monkeypatch.setattr(views, "CPU_CHUNK_PIXELS", 64 * 64 * 2)  # chunks of two images
    assert torch.equal(view.apply(images, masks, ids), whole)
    other_seed = View.parse(f"{name}:2", seed=5).apply(images, masks, ids)
    assert torch.equal(other_seed, whole) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", ALL)
def test_mean_change_grows_with_severity(name):
    images, masks, ids = batch(6, size=96)
    corruption = CORRUPTIONS.get(name)
    changes = [
        _mean_change(View.parse(f"{name}:{s}"), images, masks, ids)
        for s in range(1, corruption.max_severity + 1)
    ]
    assert all(a < b for a, b in itertools.pairwise(changes)), changes
    assert changes[0] > 0


def test_composition_applies_each_part_in_turn_with_its_own_stream():
    images, masks, ids = batch(3, size=64)
    view = View.parse("speckle+shadow:3")
    out = view.apply(images, masks, ids)
    inside = masks.bool()
    x = images.float() / 255
    for part, name in enumerate(view.parts):
        changed = CORRUPTIONS.get(name).apply(x, inside, 3, view.generators(ids, part))
        x = torch.where(inside, changed.clamp(0, 1), x)
    assert torch.equal(out, (x * 255).round().to(torch.uint8))
    assert not torch.equal(out, View.parse("speckle:3").apply(images, masks, ids))


def test_a_clean_view_is_the_image_itself():
    images, masks, ids = batch(2)
    assert View.clean().apply(images, masks, ids) is images


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ALL)
def test_cpu_and_cuda_agree(name):
    """The same pixels (to a grey level) where the corruption draws no noise field, the same
    statistics of the change where it does (the two devices' generators differ)."""
    images, masks, ids = batch(6, size=96)
    view = View.parse(f"{name}:3")
    cpu = view.apply(images, masks, ids).float()
    gpu = view.apply(images.cuda(), masks.cuda(), ids).cpu().float()
    noisy = {"speckle", "haze", "gaussian-noise", "us-jepa-speckle"}
    if name in noisy:
        inside = masks.bool()
        a, b = (cpu - images.float())[inside], (gpu - images.float())[inside]
        assert float(a.abs().mean()) == pytest.approx(float(b.abs().mean()), rel=0.1)
        assert float(a.std()) == pytest.approx(float(b.std()), rel=0.1)
    else:
        assert float((cpu - gpu).abs().max()) <= 1.0
        assert float((cpu - gpu).abs().mean()) < 0.01
