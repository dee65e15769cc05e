import xml.etree.ElementTree as ET

import pytest
from matplotlib.collections import PolyCollection
from result_records import make_record, write_records

from ultrabench_eval.cli.parser import main
from ultrabench_eval.report import plots

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
