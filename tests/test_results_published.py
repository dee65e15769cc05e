import csv
import io

import pytest
from result_records import make_record, write_records

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.registry import MODELS, TASKS
from ultrabench_eval.results import published


def test_us_jepa_table_is_whole_sourced_and_mapped():
    table = published.load("us-jepa-2026")
    assert table.source.startswith("US-JEPA (arXiv 2602.19322")
    assert table.protocol == "us-jepa-2026"
    assert len(table.cells) == 80  # 10 models x 8 tasks
    assert table.cells[("USFM", "FATTY_LIVER")] == (73.6, 8.8)
    assert table.cells[("US-JEPA", "MMOTU")] == (52.2, 0.2)
    assert table.models["USFM"] == "usfm" and table.tasks["FATTY_LIVER"] == "fatty-liver"
    # every published model and task maps onto a model and a task card ubench has
    assert set(table.models.values()) <= set(MODELS.names())
    assert set(table.tasks.values()) <= set(TASKS.names())
    assert "us-jepa-2026" in published.available()


def _records():
    return [
        make_record("usfm", "fatty-liver", 70.0, 2.0, probe="us-jepa-2026"),
        make_record("us-jepa", "aul", 72.6, 1.0, probe="us-jepa-2026"),
        make_record("samus", "fatty-liver", 45.0, 0.0, probe="us-jepa-2026"),
        # not the paper's protocol: only compared when asked for with --protocol linear
        make_record("urfm", "aul", 70.0, 0.4, probe="linear"),
        # corrupted test images are never compared with a clean published score
        make_record("urfm", "aul", 10.0, probe="us-jepa-2026", view="blur-s1-seed0"),
        make_record("pixels", "synth-lesion", 40.0, probe="us-jepa-2026"),
    ]


def test_compare_hand_computed():
    table = published.load("us-jepa-2026")
    rows = {(c.model, c.task): c for c in published.compare(table, _records())}
    assert len(rows) == 80
    usfm = rows[("usfm", "fatty-liver")]
    assert (usfm.mean, usfm.published_mean, usfm.published_std) == (70.0, 73.6, 8.8)
    assert usfm.difference == pytest.approx(-3.6)
    assert usfm.difference_in_std == pytest.approx(-3.6 / 8.8)  # -0.409
    us_jepa = rows[("us-jepa", "aul")]
    assert us_jepa.difference == pytest.approx(3.0)  # 72.6 - 69.6
    assert us_jepa.difference_in_std == pytest.approx(2.0)  # 3.0 / 1.5
    samus = rows[("samus", "fatty-liver")]
    assert samus.difference == pytest.approx(2.9)  # 45.0 - 42.1
    assert samus.difference_in_std is None  # published std 0.0
    assert rows[("urfm", "aul")].mean is None
    assert sum(c.mean is not None for c in rows.values()) == 3

    linear = {(c.model, c.task): c for c in published.compare(table, _records(), "linear")}
    assert linear[("urfm", "aul")].difference == pytest.approx(-1.5)  # 70.0 - 71.5
    assert linear[("urfm", "aul")].difference_in_std == pytest.approx(-1.5 / 1.1)


def test_compare_command(capsys, tmp_path):
    write_records(tmp_path / "res", _records())
    code = main(["compare", "--published", "us-jepa-2026", "--results", str(tmp_path / "res")])
    out = capsys.readouterr().out
    assert code == 0
    lines = {
        tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[3:-1]]
        for line in out.splitlines()
        if line.startswith("| ") and "(" in line
    }
    assert lines[("usfm (USFM)", "fatty-liver (FATTY_LIVER)")] == [
        "70.0 ± 2.0",
        "73.6 ± 8.8",
        "-3.6",
        "-0.41",
    ]
    assert lines[("us-jepa (US-JEPA)", "aul (AUL)")] == [
        "72.6 ± 1.0",
        "69.6 ± 1.5",
        "+3.0",
        "+2.00",
    ]
    assert lines[("samus (SAMUS)", "fatty-liver (FATTY_LIVER)")][2:] == [
        "+2.9",
        "n/a (published std 0)",
    ]
    assert lines[("dinov3-vitb16 (DINOv3)", "aul (AUL)")] == ["not run", "64.3 ± 0.6", "", ""]
    assert sum(row[0] == "not run" for row in lines.values()) == 77
    # mean of +3.0, -3.6, +2.9 and of their absolute values
    assert "3 of 80 published cells run; mean difference +0.77, mean |difference| 3.17" in out
    assert "source: US-JEPA (arXiv 2602.19322" in out

    code = main(
        [
            "compare",
            "--published",
            "us-jepa-2026",
            "--results",
            str(tmp_path / "res"),
            "--format",
            "csv",
        ]
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0 and len(rows) == 80
    usfm = next(r for r in rows if r["model"] == "usfm" and r["task"] == "fatty-liver")
    assert float(usfm["difference"]) == pytest.approx(-3.6)
    assert float(usfm["difference_in_std"]) == pytest.approx(-0.409091, abs=1e-6)


def test_a_table_of_our_own(tmp_path):
    (tmp_path / "mine.csv").write_text(
        "# Someone et al. 2027, table 2\nmodel,task,mean,std\nNet,LIVER,60.0,2.0\n"
    )
    (tmp_path / "mine.yaml").write_text(
        "table: mine.csv\ntitle: Mine\nprotocol: linear\nmodels: {Net: pixels}\n"
        "tasks: {LIVER: synth-lesion}\n"
    )
    table = published.load("mine", tmp_path)
    assert published.load(str(tmp_path / "mine.csv")) == table  # by path, too
    [row] = published.compare(table, [make_record("pixels", "synth-lesion", 55.0)])
    assert row.difference == pytest.approx(-5.0) and row.difference_in_std == pytest.approx(-2.5)
    assert published.available(tmp_path) == ["mine"]


@pytest.mark.parametrize(
    "csv_text, yaml_extra, message",
    [
        ("model,task,mean,std\nNet,LIVER,60,2\n", "", "no source line"),
        ("# src\nmodel,task,mean,std\nNet,LIVER,sixty,2\n", "", "mine.csv:3: expected"),
        ("# src\nmodel,task,mean,std\nOther,LIVER,60,2\n", "", "does not map: Other"),
        ("# src\nmodel,task,score\nNet,LIVER,60\n", "", "header must be"),
        ("# src\nmodel,task,mean,std\nNet,LIVER,60,2\nNet,LIVER,61,2\n", "", "appears twice"),
    ],
)
def test_bad_tables_are_one_clear_error(tmp_path, csv_text, yaml_extra, message):
    (tmp_path / "mine.csv").write_text(csv_text)
    (tmp_path / "mine.yaml").write_text(
        "table: mine.csv\nprotocol: linear\nmodels: {Net: pixels}\ntasks: {LIVER: t}\n" + yaml_extra
    )
    with pytest.raises(UserError, match=message):
        published.load("mine", tmp_path)


def test_unknown_table_exits_2_with_one_line(capsys, tmp_path):
    (tmp_path / "res").mkdir()
    code = main(["compare", "--published", "nope-1999", "--results", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no published table 'nope-1999'" in err
    assert "us-jepa-2026" in err  # says what there is


def test_a_one_fit_score_is_compared_without_a_spread():
    table = published.load("us-jepa-2026")
    record = make_record("usfm", "fatty-liver", 70.0, 0.0, probe="us-jepa-2026", seeds=1)
    [row] = [c for c in published.compare(table, [record]) if c.mean is not None]
    assert row.fits == 1 and row.std is None
    assert published.display_row(row)[2] == "70.0 (1 fit)"
    text = published.render(table, [row], "csv")
    [line] = list(csv.DictReader(io.StringIO(text)))
    assert line["fits"] == "1" and line["std"] == "" and line["mean"] == "70"
    two = make_record("usfm", "fatty-liver", 70.0, 2.0, probe="us-jepa-2026")
    [row] = [c for c in published.compare(table, [two]) if c.mean is not None]
    assert published.display_row(row)[2] == "70.0 ± 2.0" and row.fits == 2
