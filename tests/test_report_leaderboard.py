import dataclasses
import io
import random
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from result_records import make_record, write_records

from ultrabench_eval.cli.parser import main
from ultrabench_eval.report import renderers
from ultrabench_eval.report.leaderboard import build_tables, render, render_markdown


def _body(text, heading):
    """The table rows under a markdown heading."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"### {heading}"))
    rows = []
    for line in lines[start + 4 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.split("|")[1:-1]])
    return lines[start + 2], rows


def test_table_rows_sorted_by_mean_with_missing_cells_and_bold_best():
    records = [
        make_record("pixels", "lesion", 40.0),
        make_record("pixels", "texture", 60.0),
        make_record("hog", "lesion", 70.0),
        make_record("hog", "texture", 80.25),
        make_record("partial", "lesion", 99.0),
        make_record("hog", "lesion", 30.0, fraction=0.1),
    ]
    text = render_markdown(records)
    assert text.startswith("### linear: all training labels, test macro-F1 (x100)")
    header, body = _body(text, "linear:")
    assert [c.strip() for c in header.split("|")[1:-1]] == [
        "model",
        "lesion",
        "texture",
        "mean",
        "mean rank",
    ]
    # rows by mean over tasks; a model without every task has no mean and comes last
    assert [row[0] for row in body] == ["hog", "pixels", "partial"]
    assert body[0][1:] == ["70.0 ± 0.5", "**80.2 ± 0.5**", "**75.1**", "1.50"]
    assert body[1][1:] == ["40.0 ± 0.5", "60.0 ± 0.5", "50.0", "2.50"]
    # partial is best on lesion (bold) and has rank 1 on the one task it has (bold)
    assert body[2][1:] == ["**99.0 ± 0.5**", "–", "–", "**1.00**"]
    assert "### linear@10%: 10 % of the training labels" in text
    assert [t.name for t in build_tables(records)] == ["linear", "linear@10%"]


def _predictions(labels, wrong, seed):
    """`labels` with the answers at indices `wrong` moved to the next class."""
    out = np.array(labels)
    out[wrong] = (out[wrong] + 1) % 3
    return out.tolist()


def test_models_not_significantly_worse_than_the_best_are_marked():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 60).tolist()
    n = len(labels)
    base_wrong = rng.choice(n, 20, replace=False)
    extra = [i for i in range(n) if i not in set(base_wrong)][:3]
    far_wrong = rng.choice(n, 80, replace=False)
    best = [_predictions(labels, base_wrong, 0)] * 2
    close = [_predictions(labels, np.concatenate([base_wrong, extra]), 0)] * 2
    far = [_predictions(labels, far_wrong, 0)] * 2
    records = [
        make_record("best", "t", labels=labels, predictions=best),
        make_record("close", "t", labels=labels, predictions=close),
        make_record("far", "t", labels=labels, predictions=far),
        # no stored predictions: the test cannot run, so no mark
        make_record("nopred", "t", 85.0),
    ]
    _, body = _body(render_markdown(records), "linear:")
    cells = {row[0]: row[1] for row in body}
    assert cells["best"].startswith("**") and "†" not in cells["best"]
    assert cells["close"].endswith(" †") and not cells["close"].startswith("**")
    assert "†" not in cells["far"] and "†" not in cells["nopred"]
    # the same decision as the paired bootstrap's p-value on its own
    from ultrabench_eval.results.stats import paired_bootstrap

    assert paired_bootstrap(np.array(labels), np.array(close), np.array(best), 3).p_value >= 0.05
    assert paired_bootstrap(np.array(labels), np.array(far), np.array(best), 3).p_value < 0.05


def test_one_table_per_protocol_in_reading_order():
    records = [
        make_record("m", "t", 50.0, probe="linear", shots=1),
        make_record("m", "t", 60.0, probe="linear", fraction=0.1),
        make_record("m", "t", 70.0, probe="linear", shots=5),
        make_record("m", "t", 80.0, probe="linear"),
        make_record("m", "t", 65.0, probe="linear", fraction=0.5),
        make_record("m", "t", 75.0, probe="knn"),
        make_record("m", "t", 40.0, view="noise-s1-seed0"),
    ]
    names = [t.name for t in build_tables(records)]
    assert names == [
        "knn",
        "linear",
        "linear@50%",
        "linear@10%",
        "linear@5-shot",
        "linear@1-shot",
        "linear robustness",
    ]
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert render_markdown(shuffled) == render_markdown(records)


def test_robustness_table_hand_computed():
    records = [
        make_record("a", "t1", 80.0),
        make_record("a", "t1", 70.0, view="gaussian-noise-s1-seed0"),
        make_record("a", "t1", 60.0, view="gaussian-noise-s2-seed0"),
        # the robustness protocol's own fields win over the view name
        make_record("a", "t1", 76.0, view="v7", corruption="blur", severity=1),
        make_record("b", "t1", 50.0),
        make_record("b", "t1", 48.0, view="gaussian-noise-s1-seed0"),
        make_record("b", "t1", 46.0, view="gaussian-noise-s2-seed0"),
        make_record("b", "t1", 47.0, view="blur-s1"),
        # a corrupted record without a clean one to compare with
        make_record("c", "t1", 10.0, view="blur-s1"),
    ]
    table = build_tables(records)[-1]
    assert table.name == "linear robustness"
    assert table.columns == ["blur", "gaussian-noise", "clean", "mean corrupted", "relative drop"]
    rows = {model: cells for model, cells in table.rows}
    assert set(rows) == {"a", "b"}
    assert [c.value for c in rows["a"]] == pytest.approx(
        [76.0, 65.0, 80.0, (70 + 60 + 76) / 3, 100 * (80 - (70 + 60 + 76) / 3) / 80]
    )
    assert [c.value for c in rows["b"]] == pytest.approx(
        [47.0, 47.0, 50.0, 47.0, 100 * (50 - 47) / 50]
    )
    # higher is better for scores, lower for the drop
    assert [c.best for c in rows["a"]] == [True, True, True, True, False]
    assert [c.best for c in rows["b"]] == [False, False, False, False, True]
    assert "no clean 'linear' record to compare with for: c" in table.notes[-1]
    text = render_markdown(records)
    _, body = _body(text, "linear robustness")
    assert body[0] == ["a", "**76.0**", "**65.0**", "**80.0**", "**68.7**", "14.2 %"]
    assert body[1] == ["b", "47.0", "47.0", "50.0", "47.0", "**6.0 %**"]


# -- LaTeX: checked without TeX -----------------------------------------------------------------

_KNOWN_COMMANDS = {
    "begin",
    "end",
    "caption",
    "label",
    "toprule",
    "midrule",
    "bottomrule",
    "textbf",
    "pm",
    "dagger",
    "geq",
    "textbackslash",
    "textasciitilde",
    "textasciicircum",
}


def _split_unescaped(text, sep):
    return re.split(r"(?<!\\)" + re.escape(sep), text)


def parse_latex_table(text):
    """Check that a LaTeX table would compile (balanced braces, matched environments and math,
    no unescaped special character, only known commands, every row as wide as the column
    spec) and read its tabular back as a DataFrame of the cells' plain text."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
    depth = 0
    for match in re.finditer(r"\\[{}]|[{}]", body):
        if match.group() in "{}":
            depth += 1 if match.group() == "{" else -1
            assert depth >= 0, "closing brace without an opening one"
    assert depth == 0, "unbalanced braces"
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", body):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} does not close its begin"
    assert not stack, f"unclosed environments: {stack}"
    assert len(re.findall(r"(?<!\\)\$", body)) % 2 == 0, "unbalanced $"
    assert not re.search(r"(?<!\\)[%#]", body), "unescaped % or #"
    outside_math = re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", body)
    assert not re.search(r"(?<!\\)[_^]", outside_math), "_ or ^ outside math"
    assert set(re.findall(r"\\([A-Za-z]+)", body)) <= _KNOWN_COMMANDS
    spec = re.search(r"\\begin\{tabular\}\{([lcr]+)\}", body).group(1)
    inner = body.split("\\toprule", 1)[1].split("\\bottomrule", 1)[0]
    inner = inner.replace("\\midrule", "")
    rows = [r.strip() for r in _split_unescaped(inner, "\\\\") if r.strip()]
    parsed = []
    for row in rows:
        cells = [c.strip() for c in _split_unescaped(row, "&")]
        assert len(cells) == len(spec), f"row has {len(cells)} cells for {len(spec)} columns"
        parsed.append([_latex_plain(c) for c in cells])
    return pd.DataFrame(parsed[1:], columns=parsed[0])


def _latex_plain(cell):
    cell = re.sub(r"\\textbf\{(.*)\}", r"**\1**", cell)
    for latex, plain in (
        ("$^{\\dagger}$", " †"),
        ("$\\pm$", "±"),
        ("\\%", "%"),
        ("\\_", "_"),
        ("\\&", "&"),
        ("\\#", "#"),
        ("--", "–"),
    ):
        cell = cell.replace(latex, plain)
    return cell


def _expected_frame(table):
    """The table as the markdown renderer marks it (bold **x**, dagger suffix)."""
    rows = []
    for model, cells in table.rows:
        row = [model]
        for cell in cells:
            text = renderers.cell_text(cell)
            text = f"**{text}**" if cell.best else text
            row.append(f"{text} †" if cell.not_worse else text)
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *table.columns])


def _varied_records():
    labels = np.repeat([0, 1, 2], 30).tolist()
    good = [_predictions(labels, list(range(0, 90, 9)), 0)] * 2
    almost = [_predictions(labels, list(range(0, 90, 8)), 0)] * 2
    return [
        make_record("us_jepa & co", "fatty_liver", labels=labels, predictions=good),
        make_record("pixels", "fatty_liver", labels=labels, predictions=almost),
        make_record("pixels", "t#2", 33.3),
        make_record("pixels", "fatty_liver", 20.0, fraction=0.05),
        make_record("pixels", "fatty_liver", 15.0, view="speckle-s3-seed0"),
    ]


def test_latex_compiles_and_round_trips_through_pandas():
    records = _varied_records()
    tables = build_tables(records)
    text = render(records, "latex")
    chunks = text.split("% needs \\usepackage{booktabs}\n")[1:]
    assert len(chunks) == len(tables) == 3
    for chunk, table in zip(chunks, tables, strict=True):
        assert chunk.count("\\begin{table}") == 1 and "\\caption{" in chunk
        pd.testing.assert_frame_equal(parse_latex_table(chunk), _expected_frame(table))
    assert "\\textbf{" in text and "$^{\\dagger}$" in text  # bold and the paired-test mark


def test_latex_checker_catches_broken_latex():
    good = render([make_record("m", "t", 50.0)], "latex")
    parse_latex_table(good)
    for broken in (
        good.replace("\\end{tabular}", ""),  # unclosed environment
        good.replace("\\textbf{", "\\textbf{{"),  # unbalanced brace
        good.replace("m &", "m_x &"),  # unescaped underscore
        good.replace("m &", "m & 1 &"),  # a row wider than the spec
    ):
        with pytest.raises(AssertionError):
            parse_latex_table(broken)


def test_csv_has_one_line_per_cell():
    records = _varied_records()
    frame = pd.read_csv(io.StringIO(render(records, "csv")))
    assert list(frame.columns) == [
        "table",
        "model",
        "column",
        "value",
        "std",
        "best",
        "not_significantly_worse",
        "fits",
    ]
    tables = build_tables(records)
    assert len(frame) == sum(len(t.rows) * len(t.columns) for t in tables)
    # fits are whole numbers, written as such (blank where a cell has none)
    fits = [line.rsplit(",", 1)[1] for line in render(records, "csv").splitlines()[1:]]
    assert all(f == "" or f.isdigit() for f in fits) and any(fits)
    linear = frame[(frame.table == "linear") & (frame.column == "fatty_liver")]
    by_model = linear.set_index("model")
    assert by_model.loc["us_jepa & co", "value"] == pytest.approx(records[0].scores.mean)
    assert bool(by_model.loc["us_jepa & co", "best"])
    assert bool(by_model.loc["pixels", "not_significantly_worse"])


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.bold, self.open = 0, 0, []

    def handle_starttag(self, tag, attrs):
        self.open.append(tag)
        self.tables += tag == "table"
        self.bold += tag == "b"

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag


def test_html_fragments_are_well_formed_and_escaped():
    records = _varied_records()
    text = render(records, "html")
    parser = _Tables()
    parser.feed(text)
    assert not parser.open
    tables = build_tables(records)
    assert parser.tables == len(tables)
    assert parser.bold == sum(c.best for t in tables for _, cells in t.rows for c in cells)
    assert "us_jepa &amp; co" in text and "us_jepa & co" not in text


def test_cli_formats(capsys, tmp_path):
    write_records(tmp_path / "res", _varied_records())
    outputs = {}
    for fmt in ("markdown", "latex", "csv", "html"):
        assert main(["leaderboard", "--results", str(tmp_path / "res"), "--format", fmt]) == 0
        outputs[fmt] = capsys.readouterr().out
    assert outputs["markdown"].startswith("### linear: ")
    assert outputs["latex"].startswith("% needs \\usepackage{booktabs}")
    assert outputs["csv"].startswith("table,model,column,")
    assert outputs["html"].startswith('<h3 id="table-linear">')
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "--format", "docx"])
    assert exc.value.code == 2


def test_no_records():
    assert render_markdown([]) == "no result records\n"
    with pytest.raises(ValueError, match="unknown leaderboard format"):
        render([make_record("m", "t", 1.0)], "rtf")


def _one_fit(record, seeds=5):
    """`record` as a probe that ignores the seed writes it at all labels: one fit, std 0."""
    scores = dataclasses.replace(record.scores, per_seed=[record.scores.mean], std=0.0, fits=1)
    protocol = dataclasses.replace(record.protocol, seeds=[0], seeds_requested=seeds)
    return dataclasses.replace(record, scores=scores, protocol=protocol)


def test_a_single_fit_shows_no_spread_in_any_format():
    records = [
        _one_fit(make_record("pixels", "lesion", 40.0)),
        make_record("hog", "lesion", 70.0, std=1.25),
    ]
    _, body = _body(render_markdown(records), "linear:")
    cells = {row[0]: row[1] for row in body}
    assert cells == {"hog": "**70.0 ± 1.2**", "pixels": "40.0 (1 fit)"}
    markdown = render(records, "markdown")
    assert "± 0.0" not in markdown and "_(1 fit): one probe fit behind the score" in markdown
    latex = render(records, "latex")
    assert "40.0 (1 fit)" in latex and "$\\pm$ 0.0" not in latex and "one probe fit" in latex
    html_text = render(records, "html")
    assert "40.0 (1 fit)" in html_text and "± 0.0" not in html_text
    frame = pd.read_csv(io.StringIO(render(records, "csv")))
    lesion = frame[(frame.table == "linear") & (frame.column == "lesion")].set_index("model")
    assert lesion.loc["pixels", "fits"] == 1 and pd.isna(lesion.loc["pixels", "std"])
    assert lesion.loc["hog", "fits"] == 2 and lesion.loc["hog", "std"] == pytest.approx(1.25)
    means = frame[frame.column == "mean"]
    assert means.fits.isna().all()  # a mean over tasks is not a fit


def test_no_one_fit_note_without_a_single_fit():
    text = render_markdown([make_record("hog", "lesion", 70.0)])
    assert "1 fit" not in text


def test_a_record_that_lists_no_seeds_keeps_its_spread():
    bare = make_record("hog", "lesion", 70.0, std=1.5)
    bare = dataclasses.replace(bare, scores=dataclasses.replace(bare.scores, per_seed=None))
    _, body = _body(render_markdown([bare]), "linear:")
    assert body[0][1] == "**70.0 ± 1.5**"


def test_a_segmentation_table_names_the_chance_dice():
    from result_records import as_segmentation, make_record

    from ultrabench_eval.report.tables import build_tables, chance_dice
    from ultrabench_eval.results.record import TestPart

    record = as_segmentation(make_record("m", "seg", 40.0, probe="dense"))
    assert chance_dice(record) is None  # no per-image counts: no chance to tell
    # two images, [tp, fp, fn] per class: 30 of 100 true pixels are lesion
    counts = [[[60, 5, 10], [20, 10, 5]], [[10, 0, 0], [5, 0, 0]]]
    test = TestPart(
        ids_sha256="ids", labels=None, predictions_per_seed=None, counts_per_seed=[counts]
    )
    record = dataclasses.replace(record, test=test)
    assert chance_dice(record) == pytest.approx(100 * 30 / 110)
    (table,) = build_tables([record])
    assert table.columns[:2] == ["seg Dice", "seg mIoU"]
    assert any(note.startswith("chance:") and "seg 27.3" in note for note in table.notes)
