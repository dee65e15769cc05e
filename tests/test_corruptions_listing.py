"""`ubench corruptions`: every corruption, every parameter at every severity, the suites."""

from ultrabench_eval.core.registry import CORRUPTIONS
from ultrabench_eval.corruptions.listing import parameter_rows, render


def test_every_parameter_of_every_corruption_is_listed():
    rows = parameter_rows()
    listed = {(r[0], r[1]) for r in rows}
    for name, corruption in CORRUPTIONS.items():
        for key in corruption.table:
            assert (name, key) in listed
    speckle = next(r for r in rows if r[:2] == ["speckle", "looks"])
    assert speckle[2:7] == ["40", "12", "5", "2", "1"]
    blur = next(r for r in rows if r[:2] == ["us-jepa-blur", "sigma_px"])
    assert blur[2:7] == ["1", "2", "3", "", ""]


def test_render_has_the_three_tables():
    text = render()
    assert "| us-jepa-2026 " in text and "| ultrasound-5 " in text
    assert "| gaussian-shadow " in text and "usaugment" in text
    assert text.count("\n|--") == 3 or text.count("|---") >= 3
