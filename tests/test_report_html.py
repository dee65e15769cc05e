import base64
import dataclasses
import io
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from markupsafe import escape
from PIL import Image
from result_records import as_segmentation, make_record, write_records

from ultrabench_eval.cli.parser import main
from ultrabench_eval.report import html as report
from ultrabench_eval.report import leaderboard, plots
from ultrabench_eval.results.overlays import Overlay, overlay_path, write_overlay

VOID = {"meta", "br", "hr", "img", "link", "input", "wbr", "col", "source"}


class PageChecker(HTMLParser):
    """Well-formedness (every element closed, in order) and what the page holds."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []
        self.tables, self.figures, self.svgs_in_figures = [], [], 0
        self.images = {}  # figure id -> its <img> sources
        self.headings, self.external, self.scripts = [], [], 0
        self._heading = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append(attrs.get("class", ""))
        if tag == "figure":
            self.figures.append(attrs.get("id"))
        if tag == "svg" and "figure" in self.stack:
            self.svgs_in_figures += 1
        if tag == "img" and "figure" in self.stack:
            self.images.setdefault(self.figures[-1], []).append(attrs.get("src"))
        if tag == "script":
            self.scripts += 1
        self._links(attrs)
        if tag in ("h2", "h3"):
            self._heading = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._links(dict(attrs))

    def _links(self, attrs):
        """What the page would fetch: anything but an anchor or data inline in the page."""
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name)
            if value is not None and not value.startswith(("#", "data:")):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("h2", "h3"):
            self.headings.append(self._heading.strip())
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data


def _records():
    labels = np.repeat([0, 1], 20).tolist()
    right = [labels] * 2
    flipped = [[1 - y if i % 5 == 0 else y for i, y in enumerate(labels)]] * 2
    out = [
        make_record(
            "pixels", "synth-lesion", labels=labels, predictions=flipped, classes=("a", "b")
        ),
        make_record("hog", "synth-lesion", labels=labels, predictions=right, classes=("a", "b")),
        make_record("pixels", "synth-view", 41.0, 2.0),
        make_record("hog", "synth-view", 52.0, 1.0),
        # one cell of the published US-JEPA table
        make_record("usfm", "fatty-liver", 70.0, 2.0, probe="us-jepa-2026"),
    ]
    for fraction, mean in ((0.5, 40.0), (0.1, 30.0)):
        out.append(make_record("pixels", "synth-view", mean, 3.0, fraction=fraction))
        out.append(make_record("hog", "synth-view", mean + 5, 3.0, fraction=fraction))
    for severity in (1, 2, 3):
        out.append(
            make_record("hog", "synth-view", 52.0 - 4 * severity, 1.0, view=f"speckle-s{severity}")
        )
        out.append(
            make_record(
                "pixels", "synth-view", 41.0 - 6 * severity, 1.0, view=f"speckle-s{severity}"
            )
        )
    return out


def test_report_is_one_well_formed_self_contained_page(tmp_path):
    records = _records()
    page = report.build(records, tmp_path)
    checker = PageChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert page.startswith("<!DOCTYPE html>")
    # nothing to fetch: no script, no stylesheet or image from elsewhere
    assert checker.scripts == 0 and checker.external == []
    # every leaderboard table, under its own heading
    tables = leaderboard.build_tables(records)
    assert checker.tables.count("dataframe leaderboard") == len(tables) == 5
    for table in tables:
        assert table.title in checker.headings
    # every plot, as inline SVG inside its figure
    names = [p.name for p in plots.make_plots(records)]
    assert checker.figures == [f"plot-{name}" for name in names]
    assert checker.svgs_in_figures == len(names) == 4
    # the published table we share a cell with, and the run's metadata
    assert any(h.startswith("ours (us-jepa-2026) vs US-JEPA") for h in checker.headings)
    assert "usfm (USFM)" in page and "-3.6" in page and "-0.41" in page
    for heading in ("Models", "Tasks", "Protocols", "Environment"):
        assert heading in checker.headings
    assert "pixels-fp" in page and "1 of 80 published cells run" in page


def test_user_strings_are_escaped_everywhere(tmp_path):
    """Names come from records and folders: never markup, in text and in attributes alike."""
    records = [*_records(), make_record("<script>x</script>&'\"", "synth-view", 33.0, 1.0)]
    page = report.build(records, tmp_path / "<b>runs</b>")
    checker = PageChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == [] and checker.scripts == 0
    assert "<script>" not in page and "<b>runs" not in page
    assert "&lt;script&gt;x&lt;/script&gt;&amp;" in page  # in the tables
    assert f"<code>{tmp_path}/&lt;b&gt;runs&lt;/b&gt;</code>" in page


def test_page_checker_catches_a_broken_page():
    checker = PageChecker()
    checker.feed("<html><body><table><tr><td>x</tr></table></body></html>")
    assert checker.errors


def test_report_command_writes_the_page(capsys, tmp_path):
    res = write_records(tmp_path / "res", _records())
    assert main(["report", "--results", str(res)]) == 0
    out = res / "report.html"
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "--results", str(res), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text() == out.read_text()  # the same records, the same page


def test_report_without_records_is_one_clear_error(capsys, tmp_path):
    (tmp_path / "res").mkdir()
    assert main(["report", "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no result records" in err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    res = write_records(tmp_path / "res", _records())
    assert main(["report", "--results", str(res)]) == 0
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1400,2000",
            (res / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (2000, 1400)
    # text and plots drawn: many dark pixels and many shades, not a blank or error page
    assert (pixels < 100).mean() > 0.005 and len(np.unique(pixels)) > 50


def test_a_one_fit_protocol_reads_as_such_on_the_page(tmp_path):
    one = make_record("pixels", "synth-view", 41.0, 0.0, probe="knn")
    scores = dataclasses.replace(one.scores, per_seed=[41.0], fits=1)
    protocol = dataclasses.replace(one.protocol, seeds=[0], seeds_requested=5)
    one = dataclasses.replace(one, scores=scores, protocol=protocol)
    page = report.build([one, make_record("hog", "synth-view", 52.0, 1.0, probe="knn")], tmp_path)
    assert "41.0 (1 fit)" in page and "± 0.0" not in page
    assert "<td>5 (1 fit)</td>" in page  # the protocols table: five seeds asked, one fit


def _segmentation_records():
    """The dense probe on task `lesion-seg` for models a, b and c, with all labels."""
    classes = ("background", "lesion")
    return [
        as_segmentation(make_record(m, "lesion-seg", score, probe="dense", classes=classes))
        for m, score in (("a", 60.0), ("b", 50.0), ("c", 40.0))
    ]


def _write_overlay(root, model):
    images = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (2, 8, 1))
    truth = np.zeros((2, 8, 8), np.uint8)
    truth[:, 2:6, 2:6] = 1
    prediction = np.roll(truth, 1, axis=1)
    valid = np.ones_like(truth)
    overlay = Overlay(images, truth, prediction, valid, ["x/one.png", "x/two.png"], ["bg", "les"])
    write_overlay(overlay_path(root, model, "lesion-seg", "dense"), overlay)


def test_segmentation_samples_are_an_inline_png_per_task(tmp_path):
    records = _records() + _segmentation_records()
    for model in "ab":  # c has no overlay file: no row, no error
        _write_overlay(tmp_path, model)
    page = report.build(records, tmp_path)
    checker = PageChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert checker.scripts == 0 and checker.external == []  # the PNG is inside the page
    assert "Segmentation" in checker.headings
    [src] = checker.images["plot-overlay-lesion-seg"]
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    png = base64.b64decode(src[len(prefix) :], validate=True)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
    # the figure the page holds: a row per model with an overlay file
    [plot] = plots.make_overlay_plots(records, tmp_path)
    assert png == plots.render(plot.figure, "png", palette=True)
    ylabels = [ax.get_ylabel() for ax in plot.figure.axes if ax.get_ylabel()]
    assert ylabels == ["a", "b"]
    assert f"{escape(plot.title)} (<code>overlay-lesion-seg</code>)" in page
    # the captions of segmentation plots name Dice, those of classification plots macro-F1
    made_plots = plots.make_plots(records)
    assert "tasks-dense" in {made.name for made in made_plots}
    for made in made_plots:
        assert f"{escape(made.title)} (<code>{made.name}</code>)" in page
        segmentation = made.name.endswith("-dense")
        assert ("Dice" in made.title) == segmentation, made.name
        assert ("macro-F1" in made.title) != segmentation, made.name


def test_no_segmentation_section_without_overlay_files(tmp_path):
    records = _records() + _segmentation_records()
    page = report.build(records, tmp_path)
    assert 'id="segmentation"' not in page and "data:image/png" not in page
    # a damaged file is no figure, not an error
    _write_overlay(tmp_path, "a")
    path = overlay_path(tmp_path, "a", "lesion-seg", "dense")
    path.write_bytes(path.read_bytes()[:64])
    assert "data:image/png" not in report.build(records, tmp_path)
