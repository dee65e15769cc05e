from ultrabench_eval.leaderboard import render_markdown, tables
from ultrabench_eval.results import SCHEMA


def _record(model, task, mean, std=0.5, protocol="linear"):
    return {
        "schema": SCHEMA,
        "model": {"name": model},
        "task": {"name": task},
        "protocol": {"id": protocol},
        "scores": {"mean": mean, "std": std},
    }


def test_table_rows_sorted_by_mean_with_missing_cells():
    records = [
        _record("pixels", "lesion", 40.0),
        _record("pixels", "texture", 60.0),
        _record("hog", "lesion", 70.0),
        _record("hog", "texture", 80.25),
        _record("partial", "lesion", 99.0),
        _record("hog", "lesion", 30.0, protocol="linear@10%"),
    ]
    text = render_markdown(records)
    lines = text.splitlines()
    assert lines[0].startswith("### linear:")
    assert lines[2].split("|")[1:5] == [" model   ", " lesion     ", " texture    ", " mean   "]
    body = [line for line in lines[4:7]]
    assert body[0].startswith("| hog") and "75.1" in body[0] and "80.2 ± 0.5" in body[0]
    assert body[1].startswith("| pixels") and "50.0" in body[1]
    assert body[2].startswith("| partial") and "–" in body[2]

    # mean rank over the tasks each model has: hog 2nd then 1st, pixels 3rd then 2nd
    def last_cell(line):
        return line.split("|")[-2].strip()

    assert last_cell(lines[2]) == "mean rank"
    assert [last_cell(line) for line in body] == ["1.50", "2.50", "1.00"]
    assert "### linear@10%:" in text
    assert set(tables(records)) == {"linear", "linear@10%"}


def test_no_records():
    assert render_markdown([]) == "no result records\n"
