"""Suites: the paper's preset exactly, the extended one, severities, and the suite resolver."""

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.filters import gaussian_kernel
from ultrabench_eval.corruptions.presets import PRESETS, get_preset, parse_severities, suite


def test_us_jepa_2026_is_the_papers_suite():
    preset = get_preset("us-jepa-2026")
    assert preset.severities == (1, 2, 3)
    blur, contrast, speckle = (CORRUPTIONS.get(c) for c in preset.corruptions)
    # Gaussian blur: sigma = severity, kernel 2 floor(2 sigma) + 1 = 5, 9, 13 (224-px image)
    assert [blur.sigmas(s) for s in (1, 2, 3)] == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
    assert [gaussian_kernel(s).numel() for s in (1.0, 2.0, 3.0)] == [5, 9, 13]
    assert contrast.levels == (0.7, 0.5, 0.3)
    assert speckle.parameters(2) == {"eta_std": 0.7, "kernel_sigma_px": 2.0}
    assert [speckle.parameters(s)["eta_std"] for s in (1, 2, 3)] == pytest.approx([0.35, 0.7, 1.05])


def test_ultrasound_5_has_every_corruption_the_issue_names_at_five_severities():
    preset = get_preset("ultrasound-5")
    wanted = {
        "speckle",
        "shadow",
        "gaussian-shadow",
        "attenuation",
        "haze",
        "reverberation",
        "gain",
        "gaussian-noise",
        "blur",
        "contrast",
        "jpeg",
    }
    assert set(preset.corruptions) == wanted
    assert all(CORRUPTIONS.get(c).max_severity == 5 for c in preset.corruptions)
    for c in preset.corruptions:  # every parameter has a value per severity and a meaning
        corruption = CORRUPTIONS.get(c)
        assert corruption.table and all(len(v) == 5 for v in corruption.table.values())
        assert set(corruption.units) == set(corruption.table)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'ultrasound-5'"):
        get_preset("ultrasound5")
    assert set(PRESETS) == {"us-jepa-2026", "ultrasound-5"}


def test_severities_parse():
    assert parse_severities("1-5") == (1, 2, 3, 4, 5)
    assert parse_severities("3,1,3") == (1, 3)
    assert parse_severities("2") == (2,)
    for bad in ("0-2", "5-1", "a", ""):
        with pytest.raises(UserError, match="--severities"):
            parse_severities(bad)


def test_suite_resolves_presets_names_and_compositions():
    assert suite(None, "us-jepa-2026", None)[:2] == [("us-jepa-blur", 1), ("us-jepa-blur", 2)]
    assert len(suite(None, "ultrasound-5", (1, 3))) == 22
    assert suite(["speckle+shadow"], None, (2,)) == [("speckle+shadow", 2)]
    assert len(suite(["blur"], None, None)) == 5  # every severity by default
    assert suite(["blur", "blur"], None, (1,)) == [("blur", 1)]  # once each
    with pytest.raises(UserError, match="severities 1..3, not 5"):
        suite(None, "us-jepa-2026", (1, 5))
    with pytest.raises(UserError, match="unknown corruption 'sparkle'"):
        suite(["sparkle"], None, None)
    with pytest.raises(UserError, match="either --corruptions"):
        suite(["blur"], "us-jepa-2026", None)
    with pytest.raises(UserError, match="either --corruptions"):
        suite(None, None, None)
