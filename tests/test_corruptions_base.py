"""The corruption contract: parameter tables, fingerprints, and the shared random draws."""

import pytest
import torch

from ultrabench_eval.corruptions import base
from ultrabench_eval.corruptions.base import Corruption, frozen


class _Scale(Corruption):
    name = "scale-test"
    table = frozen({"factor": (0.9, 0.5), "offset": (0.0, 0.1)})
    primary = "factor"

    def apply(self, images, masks, severity, generators):
        p = self.parameters(severity)
        return images * p["factor"] + p["offset"]


class _Levels(Corruption):
    name = "levels-only"
    levels = (1.0, 2.0, 3.0)

    def apply(self, images, masks, severity, generators):
        return images


def test_levels_parameters_and_severities_come_from_the_table():
    c = _Scale()
    assert c.levels == (0.9, 0.5) and c.max_severity == 2
    assert c.parameter(2) == 0.5
    assert c.parameters(2) == {"factor": 0.5, "offset": 0.1}
    old_style = _Levels()
    assert old_style.max_severity == 3 and old_style.parameters(2) == {"level": 2.0}
    with pytest.raises(TypeError):
        c.table["factor"] = (1.0, 1.0)  # tables are read-only


def test_fingerprint_follows_parameters_and_version(monkeypatch):
    c = _Scale()
    before = c.fingerprint()
    assert before == _Scale().fingerprint() and len(before) == 8
    monkeypatch.setattr(_Scale, "table", frozen({"factor": (0.9, 0.4), "offset": (0.0, 0.1)}))
    assert c.fingerprint() != before
    monkeypatch.setattr(_Scale, "version", 2)
    assert c.fingerprint() != before


def _generators(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_uniforms_are_per_image_and_reproducible():
    draws = base.uniforms(_generators(3), 4, torch.device("cpu"))
    assert draws.shape == (3, 4) and draws.dtype == torch.float32
    assert ((draws >= 0) & (draws < 1)).all()
    again = base.uniforms(_generators(3), 4, torch.device("cpu"))
    assert torch.equal(draws, again)
    # image 1 draws the same whatever comes before it
    alone = base.uniforms(_generators(2, seed=1)[:1], 4, torch.device("cpu"))
    assert torch.equal(alone[0], draws[1])


def test_noise_consumes_one_cpu_draw_and_is_reproducible():
    first = base.normal_noise(_generators(2), (1, 8, 8), torch.device("cpu"))
    assert first.shape == (2, 1, 8, 8)
    assert torch.equal(first, base.normal_noise(_generators(2), (1, 8, 8), torch.device("cpu")))
    u = base.uniform_noise(_generators(2), (1, 8, 8), torch.device("cpu"))
    assert ((u >= 0) & (u < 1)).all()
    # the scalars drawn after the noise do not depend on the noise's size
    g1, g2 = _generators(1), _generators(1)
    base.normal_noise(g1, (1, 4, 4), torch.device("cpu"))
    base.normal_noise(g2, (1, 32, 32), torch.device("cpu"))
    assert torch.equal(torch.rand(3, generator=g1[0]), torch.rand(3, generator=g2[0]))


def test_masked_statistics_match_indexing():
    g = torch.Generator().manual_seed(3)
    values = torch.rand(3, 1, 9, 7, generator=g)
    masks = torch.rand(3, 1, 9, 7, generator=g) > 0.4
    masks[2] = False
    medians = base.masked_median(values, masks)
    means = base.masked_mean(values, masks)
    for i in range(2):
        assert medians[i].item() == values[i][masks[i]].median().item()
        assert means[i].item() == pytest.approx(values[i][masks[i]].mean().item(), rel=1e-6)
    assert medians[2].item() == values[2].median().item()  # empty mask: the whole image
    assert means[2].item() == 0.0


def test_the_eight_bit_median_is_the_same_float_as_the_selection():
    # images from the store are levels k / 255: the histogram path must give exactly the value
    # torch's median picks, for odd and even counts, empty masks and one-pixel masks
    g = torch.Generator().manual_seed(4)
    levels = torch.randint(0, 256, (6, 1, 8, 9), generator=g, dtype=torch.uint8)
    values = levels.to(torch.float32).div_(255.0)
    masks = torch.rand(6, 1, 8, 9, generator=g) > 0.5
    masks[3] = False
    masks[4] = False
    masks[4, 0, 2, 5] = True
    masks[5, 0, :, :] = True
    masks[5, 0, 0, 0] = False  # an odd count
    assert base._eight_bit_median(values.flatten(1), masks.flatten(1)) is not None  # fast path
    medians = base.masked_median(values, masks)
    for i in range(6):
        chosen = values[i][masks[i]] if bool(masks[i].any()) else values[i].flatten()
        assert medians[i].item() == chosen.median().item()


def test_values_off_the_eight_bit_levels_take_the_selection():
    values = torch.full((1, 1, 4, 4), 0.5)  # 127.5 / 255: not a level
    masks = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert base._eight_bit_median(values.flatten(1), masks.flatten(1)) is None
    assert base.masked_median(values, masks).item() == 0.5


def test_scaled_lengths_follow_the_image_side():
    assert base.scaled(2.0, torch.zeros(1, 1, 112, 112)) == 1.0
    assert base.scaled(2.0, torch.zeros(1, 1, 224, 224)) == 2.0
