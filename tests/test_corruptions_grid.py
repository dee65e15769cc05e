"""The picture: `ubench corruptions show` draws a row per corruption, a column per severity."""

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.corruptions import grid


@pytest.fixture
def toy(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data", counts={"train": 4, "validation": 2, "test": 3})
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(f"name: toy\ndataset: {card.dataset}\nclasses: [a, b]\n")
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    monkeypatch.setattr(TASKS, "_populated", False)
    return tmp_path


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_writes_a_grid_of_rows_and_severities(toy, capsys):
    out_png = toy / "grid.png"
    code, out, err = _cli(
        capsys,
        "corruptions",
        "show",
        "--task",
        "toy",
        "--data",
        str(toy / "data"),
        "--image",
        "2",
        "--out",
        str(out_png),
        "--corruptions",
        "blur,us-jepa-speckle",
    )
    assert code == 0, err
    assert out.strip() == str(out_png)
    picture = np.asarray(Image.open(out_png))
    h = w = 48  # the toy image (40 x 48) as the store holds it: square, its longer side
    assert picture.shape == (
        grid.HEADER + 2 * (h + grid.GAP),
        grid.LABEL_WIDTH + 6 * (w + grid.GAP),
    )
    # the clean column is the image itself; the us-jepa-speckle row stops after 3 severities
    image, _, _ = grid.task_image("toy", toy / "data", 2)
    top = grid.HEADER
    assert np.array_equal(picture[top : top + h, grid.LABEL_WIDTH : grid.LABEL_WIDTH + w], image)
    row2 = grid.HEADER + h + grid.GAP
    last = grid.LABEL_WIDTH + 5 * (w + grid.GAP)
    assert (picture[row2 : row2 + h, last : last + w] == grid.BACKGROUND).all()


def test_default_rows_cover_every_corruption_and_a_composition():
    from ultrabench_eval.core.registry import CORRUPTIONS

    rows = grid.default_rows()
    assert set(CORRUPTIONS.names()) <= set(rows) and rows[-1] == "speckle+shadow"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image", "7"], "outside the test split"),
        (["--out", "grid.jpg"], "must be a .png file"),
        (["--corruptions", "sparkle"], "unknown corruption 'sparkle'"),
        (["--preset", "nope"], "unknown corruption preset"),
        (["--preset", "ultrasound-5", "--corruptions", "blur"], "either --corruptions or"),
        (["--size", "4"], "--size must be at least 8, got 4"),
        (["--split", "validation", "--image", "9"], "outside the validation split"),
    ],
)
def test_show_errors_are_one_line(toy, capsys, extra, message):
    argv = ["corruptions", "show", "--task", "toy", "--data", str(toy / "data")]
    if "--out" not in extra:
        argv += ["--out", str(toy / "g.png")]
    code, _, err = _cli(capsys, *argv, *extra)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (toy / "g.png").exists()
