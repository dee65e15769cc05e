import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from PIL import Image
from result_records import as_segmentation, make_record, write_records

from ultrabench_eval.cli.parser import main
from ultrabench_eval.report import plots
from ultrabench_eval.results.overlays import Overlay, overlay_path, write_overlay

# (model, task) -> {fraction: (mean, std)}
FEWSHOT = {
    ("a", "t1"): {1.0: (80.0, 0.0), 0.5: (70.0, 2.0), 0.1: (50.0, 4.0)},
    ("b", "t1"): {1.0: (60.0, 0.0), 0.5: (55.0, 1.0), 0.1: (40.0, 3.0)},
    ("a", "t2"): {1.0: (90.0, 0.0), 0.5: (85.0, 1.0), 0.1: (75.0, 2.0)},
}


def _records():
    out = [
        make_record(m, t, mean, std, fraction=f, ci95=(mean - 3.0, mean + 1.0))
        for (m, t), budgets in FEWSHOT.items()
        for f, (mean, std) in budgets.items()
    ]
    out += [make_record("a", "t1", 30.0, 5.0, shots=1), make_record("a", "t1", 45.0, 5.0, shots=5)]
    for model, clean, drop in (("a", 80.0, 5.0), ("b", 60.0, 2.0)):
        for corruption in ("gaussian-noise", "blur"):
            for severity in (1, 2):
                out.append(
                    make_record(
                        model,
                        "t1",
                        clean - drop * severity,
                        1.0,
                        view=f"{corruption}-s{severity}-seed0",
                    )
                )
    return out


def _lines(ax):
    return {
        line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")
    }


def test_the_plots_and_what_they_show():
    made = {p.name: p for p in plots.make_plots(_records())}
    assert list(made) == [
        "fewshot-linear",
        "fewshot-linear-shots",
        "robustness-linear",
        "tasks-linear",
    ]

    # few-shot: a panel per task, a line per model over the fractions (in %), band = ± std
    axes = [ax for ax in made["fewshot-linear"].figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["t1", "t2"]
    lines = _lines(axes[0])
    assert set(lines) == {"a", "b"}
    assert list(lines["a"].get_xdata()) == [10.0, 50.0, 100.0]
    assert list(lines["a"].get_ydata()) == [50.0, 70.0, 80.0]
    bands = [c for c in axes[0].collections if isinstance(c, PolyCollection)]
    lows_highs = sorted(
        (round(v[:, 1].min(), 6), round(v[:, 1].max(), 6))
        for band in bands
        for v in [band.get_paths()[0].vertices]
    )
    assert lows_highs == [(37.0, 60.0), (46.0, 80.0)]  # b: 40-3 .. 60+0; a: 50-4 .. 80+0
    assert axes[0].get_xscale() == "log"
    shots = _lines(made["fewshot-linear-shots"].figure.axes[0])
    assert list(shots["a"].get_xdata()) == [1.0, 5.0]

    # robustness: a panel per corruption, severity 0 is the clean score
    axes = made["robustness-linear"].figure.axes
    assert [ax.get_title() for ax in axes] == ["blur", "gaussian-noise"]
    noise = _lines(axes[1])
    assert list(noise["a"].get_xdata()) == [0, 1, 2]
    assert list(noise["a"].get_ydata()) == [80.0, 75.0, 70.0]
    assert list(noise["b"].get_ydata()) == [60.0, 58.0, 56.0]

    # per-task bars: heights are the means, whiskers the records' 95 % interval
    ax = made["tasks-linear"].figure.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [60.0, 80.0, 90.0]  # a on t1, t2; b on t1 (all labels)
    whiskers = [
        seg
        for c in ax.collections
        for seg in c.get_segments()
        if len(seg) == 2 and seg[0][0] == seg[1][0]
    ]
    spans = sorted((round(s[0][1], 6), round(s[1][1], 6)) for s in whiskers)
    assert spans == [(57.0, 61.0), (77.0, 81.0), (87.0, 91.0)]  # mean - 3 .. mean + 1


def test_files_are_png_and_svg_and_reproducible(tmp_path):
    written = plots.write_plots(_records(), tmp_path / "a")
    assert sorted(p.name for p in written) == sorted(
        f"{stem}.{ext}"
        for stem in ("fewshot-linear", "fewshot-linear-shots", "robustness-linear", "tasks-linear")
        for ext in ("png", "svg")
    )
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
            assert b"<dc:date>" not in data
    again = plots.write_plots(_records(), tmp_path / "b")
    for first, second in zip(written, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_plot_command(capsys, tmp_path):
    res = write_records(tmp_path / "res", _records())
    assert main(["plot", "--results", str(res)]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 8 and all(p.startswith(str(res / "plots")) for p in printed)
    assert main(["plot", "--results", str(res), "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 8


@pytest.mark.parametrize("records", [[], [make_record("a", "t", 50.0, fraction=0.5)]])
def test_nothing_to_plot(capsys, tmp_path, records):
    res = write_records(tmp_path / "res", records)
    res.mkdir(exist_ok=True)
    assert main(["plot", "--results", str(res)]) == 0
    assert "nothing to plot" in capsys.readouterr().err
    assert not (res / "plots").exists()


# -- the score each figure names ----------------------------------------------------------------


def _segmentation_records():
    """The dense probe on a segmentation task: two budgets, two corrupted views, all labels."""
    out = []
    for model, clean in (("a", 60.0), ("b", 40.0)):
        out.append(as_segmentation(make_record(model, "seg", clean, 2.0, probe="dense")))
        out.append(
            as_segmentation(make_record(model, "seg", clean - 10, 2.0, probe="dense", fraction=0.5))
        )
        for severity in (1, 2):
            view = f"speckle-s{severity}"
            record = make_record(model, "seg", clean - 5 * severity, 1.0, probe="dense", view=view)
            out.append(as_segmentation(record))
    return out


def test_labels_say_dice_for_segmentation_and_macro_f1_for_classification():
    made = {p.name: p for p in plots.make_plots(_records() + _segmentation_records())}
    assert set(made) == {
        "fewshot-dense",
        "robustness-dense",
        "tasks-dense",
        "fewshot-linear",
        "fewshot-linear-shots",
        "robustness-linear",
        "tasks-linear",
    }
    for name, plot in made.items():
        want, other = ("Dice", "macro-F1") if "dense" in name else ("macro-F1", "Dice")
        labels = {ax.get_ylabel() for ax in plot.figure.axes if ax.get_ylabel()}
        assert labels == {f"test {want} (x100)"}, name
        assert want in plot.title and other not in plot.title, name
    # the segmentation curves are the Dice scores, clean at severity 0
    [ax] = made["robustness-dense"].figure.axes
    assert list(_lines(ax)["a"].get_ydata()) == [60.0, 55.0, 50.0]


def test_one_protocol_with_both_metrics_gets_a_figure_per_metric():
    """Not what the bench writes, but a figure keeps one y-axis whatever the records say."""
    mixed = [make_record("a", "t1", 70.0), as_segmentation(make_record("a", "t2", 30.0))]
    made = {p.name: p for p in plots.make_plots(mixed)}
    assert set(made) == {"tasks-linear-dice", "tasks-linear-macro_f1"}
    assert made["tasks-linear-dice"].figure.axes[0].get_ylabel() == "test Dice (x100)"
    heights = [p.get_height() for p in made["tasks-linear-dice"].figure.axes[0].patches]
    assert heights == [30.0]


# -- segmentation samples ----------------------------------------------------------------------

CLASSES = ["background", "cyst", "solid"]


def _overlay(samples=3, shift=0):
    """Tiny samples: a bright image, a square of cyst and a bar of solid, the left column
    outside the scan; the prediction is the truth moved `shift` pixels right."""
    images = np.full((samples, 6, 6), 200, np.uint8)
    truth = np.zeros((samples, 6, 6), np.uint8)
    truth[:, 1:3, 1:3] = 1
    truth[:, 4, 1:5] = 2
    valid = np.ones((samples, 6, 6), np.uint8)
    valid[:, :, 0] = 0
    prediction = np.roll(truth, shift, axis=2)
    ids = [f"images/case{i}.png" for i in range(samples)]
    return Overlay(images, truth, prediction, valid, ids, CLASSES)


def _segmentation_results(root):
    """Models a, b (overlay files), c (none) and d (a damaged one) on task `seg`; a's records
    at half the labels and on a corrupted view have overlay files that the figure ignores."""
    records = [
        as_segmentation(make_record(m, "seg", 50.0, probe="dense", classes=tuple(CLASSES)))
        for m in "abcd"
    ]
    records += [
        as_segmentation(make_record("a", "seg", 40.0, probe="dense", fraction=0.5)),
        as_segmentation(make_record("a", "seg", 45.0, probe="dense", view="speckle-s1")),
    ]
    write_records(root, records)
    write_overlay(overlay_path(root, "a", "seg", "dense"), _overlay(samples=3))
    write_overlay(overlay_path(root, "b", "seg", "dense"), _overlay(samples=2, shift=1))
    write_overlay(overlay_path(root, "a", "seg", "dense@50%"), _overlay(samples=1))
    write_overlay(overlay_path(root, "a", "seg", "dense/speckle-s1"), _overlay(samples=1))
    damaged = overlay_path(root, "d", "seg", "dense")
    write_overlay(damaged, _overlay())
    damaged.write_bytes(damaged.read_bytes()[:100])  # a truncated archive
    return records


def test_overlay_figure_has_a_row_per_model_with_a_file(tmp_path):
    records = _segmentation_results(tmp_path)
    [plot] = plots.make_overlay_plots(records + _records(), tmp_path)
    assert plot.name == "overlay-seg" and plot.raster
    assert "seg" in plot.title and "dense" in plot.title and "first seed's fit" in plot.title
    grid = plot.figure.axes
    columns = 3 * 3  # three samples at most (a's), three panels each
    assert len(grid) == 2 * columns  # rows: a and b; c has no file, d's is damaged
    assert [grid[0].get_ylabel(), grid[columns].get_ylabel()] == ["a", "b"]
    assert [ax.get_title() for ax in grid[:3]] == ["case0", "truth", "prediction"]
    # b has two samples: its third sample's panels are hidden
    assert [ax.get_visible() for ax in grid[columns:]] == [True] * 6 + [False] * 3
    legend = plot.figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["cyst", "solid"]

    colors = plots.class_colors(len(CLASSES))
    image, truth, prediction = (np.asarray(ax.get_images()[0].get_array()) for ax in grid[:3])
    gray = 200 / 255
    assert np.allclose(image[3, 3], gray) and np.allclose(image[3, 0], gray)  # as it is
    assert np.allclose(truth[1, 1], 0.5 * gray + 0.5 * np.array(colors[1]))  # cyst
    assert np.allclose(truth[4, 2], 0.5 * gray + 0.5 * np.array(colors[2]))  # solid
    assert np.allclose(truth[3, 3], gray)  # background: the image
    assert np.allclose(truth[3, 0], 0.35 * gray)  # outside the scan: dimmed
    assert np.allclose(prediction, truth)  # a's prediction is the truth
    b_truth, b_prediction = (np.asarray(ax.get_images()[0].get_array()) for ax in grid[10:12])
    assert np.allclose(b_prediction[1, 3], truth[1, 1]) and not np.allclose(b_truth, b_prediction)


def test_no_overlay_figure_without_a_readable_file(tmp_path):
    records = _segmentation_results(tmp_path)
    for model in "ab":
        overlay_path(tmp_path, model, "seg", "dense").unlink()
    assert plots.make_overlay_plots(records, tmp_path) == []
    assert plots.make_overlay_plots(_records(), tmp_path) == []  # classification only
    # samples whose arrays disagree are not drawn either
    bad = _overlay()
    write_overlay(
        overlay_path(tmp_path, "a", "seg", "dense"),
        Overlay(bad.images, bad.truth[:, :4], bad.prediction, bad.valid, bad.ids, CLASSES),
    )
    assert plots.make_overlay_plots(records, tmp_path) == []


def test_mask_overlay_colours_each_class_and_dims_outside_the_scan():
    image = np.array([[0, 100, 255]], np.uint8)
    mask = np.array([[0, 1, 2]], np.uint8)
    valid = np.array([[1, 1, 0]], np.uint8)
    colors = {1: (1.0, 0.0, 0.0), 2: (0.0, 0.0, 1.0)}
    rgb = plots.mask_overlay(image, mask, valid, colors)
    assert rgb.shape == (1, 3, 3)
    assert np.allclose(rgb[0, 0], 0.0)
    assert np.allclose(rgb[0, 1], [0.5 * 100 / 255 + 0.5, 0.5 * 100 / 255, 0.5 * 100 / 255])
    assert np.allclose(rgb[0, 2], 0.35 * np.array([0.5, 0.5, 1.0]))
    assert set(plots.class_colors(3)) == {1, 2}  # the background has no colour


def test_plot_files_include_the_overlay_png_only_with_the_results_folder(tmp_path):
    records = _segmentation_results(tmp_path / "res")
    records = [r for r in records if r.is_clean and r.is_full_budget]  # fewer plots: faster
    without = plots.write_plots(records, tmp_path / "a")
    assert "overlay-seg.png" not in {p.name for p in without}
    written = plots.write_plots(records, tmp_path / "b", results_dir=tmp_path / "res")
    names = {p.name for p in written}
    assert names - {p.name for p in without} == {"overlay-seg.png"}  # a PNG, no SVG
    with Image.open(tmp_path / "b" / "overlay-seg.png") as png:
        assert png.format == "PNG" and png.mode == "P"  # a palette: small
    again = plots.write_plots(records, tmp_path / "c", results_dir=tmp_path / "res")
    assert (tmp_path / "c" / "overlay-seg.png").read_bytes() == (
        tmp_path / "b" / "overlay-seg.png"
    ).read_bytes()
    assert len(again) == len(written)
