import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from result_records import as_segmentation, make_record, write_records

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.results import record as results
from ultrabench_eval.results import regression

ROOT = Path(__file__).resolve().parent.parent
CI_BASELINE = ROOT / "results" / "baselines" / "synth-weightfree.json"


def _records(**means):
    """One linear record per model on task t (std 0.5)."""
    return [make_record(model, "t", mean) for model, mean in means.items()]


def _status(checks):
    return {c.model: c.status for c in checks}


def test_drops_beyond_the_tolerance_fail():
    baseline = regression.make_baseline(_records(a=50.0, b=50.0, c=50.0, d=50.0, gone=50.0))
    now = _records(a=48.9, b=49.0, c=50.5, d=53.0, new=10.0)
    checks, new = regression.check(baseline, now)  # default: 1 point
    assert _status(checks) == {
        "a": "dropped",  # 1.1 points
        "b": "ok",  # exactly the tolerance
        "c": "ok",
        "d": "improved",
        "gone": "missing",  # a baseline cell without a record fails too
    }
    assert [c.model for c in checks if c.failed] == ["a", "gone"]
    assert checks[0].change == pytest.approx(-1.1)
    assert new == [("new", "t", "linear")]
    checks, _ = regression.check(baseline, now, tolerance=1.2)
    assert _status(checks)["a"] == "ok"


def test_tolerance_in_baseline_std():
    baseline = regression.make_baseline(
        [make_record("a", "t", 50.0, std=2.0), make_record("b", "t", 50.0, std=0.0)]
    )
    now = [make_record("a", "t", 47.5, std=2.0), make_record("b", "t", 49.99, std=0.0)]
    checks, _ = regression.check(baseline, now, tolerance_std=1.5)  # a may drop 3.0, b nothing
    assert _status(checks) == {"a": "ok", "b": "dropped"}
    assert [c.allowed_drop for c in checks] == [3.0, 0.0]
    checks, _ = regression.check(baseline, now, tolerance_std=1.0)
    assert _status(checks)["a"] == "dropped"
    with pytest.raises(UserError, match="not both"):
        regression.check(baseline, now, tolerance=1.0, tolerance_std=1.0)


def test_a_different_setup_is_not_compared():
    baseline = regression.make_baseline([make_record("a", "t", 50.0, seeds=2)])
    checks, _ = regression.check(baseline, [make_record("a", "t", 50.0, seeds=5)])
    assert checks[0].status == "setup differs" and checks[0].failed
    assert "seeds: 2 then, 5 now" in checks[0].detail


def test_check_command_update_pass_and_planted_drop(capsys, tmp_path):
    res = write_records(tmp_path / "res", _records(a=50.0, b=60.0))
    baseline = tmp_path / "base" / "baseline.json"
    args = ["check", "--baseline", str(baseline), "--results", str(res)]
    assert main(args) == 2  # no baseline yet: one line says how to make one
    assert "check --update" in capsys.readouterr().err
    assert main([*args, "--update"]) == 0
    assert "wrote 2 cells" in capsys.readouterr().out
    assert [p.name for p in baseline.parent.iterdir()] == ["baseline.json"]  # no temporary left
    stored = json.loads(baseline.read_text())
    assert [(c["model"], c["mean"]) for c in stored["cells"]] == [("a", 50.0), ("b", 60.0)]

    assert main(args) == 0
    assert (
        "2 baseline cells (allowed drop 1.00 points of macro-F1): 2 ok -> pass"
        in capsys.readouterr().out
    )

    # plant a drop: b's record now scores 2 points less
    results.write_record(res, make_record("b", "t", 58.0))
    assert main(args) == 1
    out = capsys.readouterr().out
    fail_lines = [line for line in out.splitlines() if line.startswith("| FAIL")]
    assert len(fail_lines) == 1 and "| b " in fail_lines[0] and "-2.00" in fail_lines[0]
    assert "1 dropped" in out and "-> FAIL" in out
    assert main([*args, "--tolerance", "2.5"]) == 0
    capsys.readouterr()
    assert main([*args, "--tolerance-std", "3"]) == 1  # 3 x 0.5 = 1.5 < 2
    capsys.readouterr()

    # --update accepts the new scores
    assert main([*args, "--update"]) == 0 and main(args) == 0


def test_bad_baseline_is_one_clear_error(capsys, tmp_path):
    res = write_records(tmp_path / "res", _records(a=50.0))
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    assert main(["check", "--baseline", str(bad), "--results", str(res)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a ubench baseline" in err


def test_the_ci_baseline_matches_the_ci_configuration():
    stored = regression.read_baseline(CI_BASELINE)
    cells = {regression.cell_key(c): c for c in stored["cells"]}
    assert {m for m, _, _ in cells} == {"pixels", "hog"}
    classification = {"synth-lesion", "synth-texture", "synth-view"}
    assert {t for _, t, _ in cells} == {*classification, "synth-lesion-seg"}
    # the segmentation task gets the dense probe whatever --probe names
    assert {p for _, t, p in cells if t in classification} == {"linear", "linear@10%"}
    assert {p for _, t, p in cells if t not in classification} == {"dense", "dense@10%"}
    assert all(c["metric"] == "dice" for (_, t, _), c in cells.items() if t not in classification)
    assert all(c["setup"]["seeds"] == 2 for c in cells.values())


def _bench_check(work, *args, baseline=None):
    env = dict(os.environ)
    env.update(
        BENCH_CHECK_WORK=str(work),
        UBENCH=str(Path(sys.executable).parent / "ubench"),
        BENCH_CHECK_BASELINE=str(baseline or CI_BASELINE),
    )
    return subprocess.run(
        [str(ROOT / ".ci" / "bench-check"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ci_script_passes_then_fails_on_a_planted_drop(tmp_path):
    """The script CI runs: the committed baseline passes; a record that scores less fails."""
    work = tmp_path / "work"
    run = _bench_check(work)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        "16 baseline cells (allowed drop 1.00 points of Dice or macro-F1): 16 ok -> pass"
        in run.stdout
    )
    # plant a drop: one record loses 3 points; its inputs are unchanged, so the re-run reuses it
    path = results.record_path(work / "results", "hog", "synth-view", "linear")
    record = json.loads(path.read_text())
    record["scores"]["mean"] -= 3.0
    path.write_text(json.dumps(record))
    run = _bench_check(work)
    assert run.returncode == 1, run.stdout + run.stderr
    [fail] = [line for line in run.stdout.splitlines() if line.startswith("| FAIL")]
    assert "| hog " in fail and "| synth-view " in fail and "-3.00" in fail
    # and --update writes the baseline it was pointed at, not the committed one
    copy = tmp_path / "baseline.json"
    run = _bench_check(work, "--update", baseline=copy)
    assert run.returncode == 0 and "wrote 16 cells" in run.stdout


# a check that cannot fail is an error, not a pass.
@pytest.mark.parametrize("flag", ["tolerance", "tolerance_std"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_tolerance_that_could_never_fail_is_refused(flag, value):
    baseline = regression.make_baseline(_records(a=50.0))
    with pytest.raises(UserError, match=r"--tolerance.* must be a finite number at least 0"):
        regression.check(baseline, _records(a=0.0), **{flag: value})


def test_cli_check_with_a_nan_tolerance_exits_2(tmp_path, capsys):
    write_records(tmp_path / "res", _records(a=50.0))
    path = tmp_path / "b.json"
    assert (
        main(["check", "--update", "--baseline", str(path), "--results", str(tmp_path / "res")])
        == 0
    )
    write_records(tmp_path / "res", _records(a=0.0))  # a 50-point drop
    code = main(
        ["check", "--baseline", str(path), "--results", str(tmp_path / "res"), "--tolerance", "nan"]
    )
    assert code == 2 and "--tolerance must be a finite number" in capsys.readouterr().err


def _baseline_file(tmp_path, edit):
    baseline = regression.make_baseline(_records(a=50.0, b=60.0))
    edit(baseline)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: b.pop("cells"), r"'cells' must be a non-empty list .*got nothing"),
        (lambda b: b.update(cells=[]), r"'cells' must be a non-empty list .*got \[\]"),
        (lambda b: b.update(cells=None), r"'cells' must be a non-empty list"),
        (lambda b: b.update(cells=3), r"'cells' must be a non-empty list .*got 3"),
        (lambda b: b.update(cells="abc"), r"'cells' must be a non-empty list .*got \"abc\""),
        (lambda b: b.update(cells=[1]), r"cell 0 must be an object, got 1"),
        (lambda b: b["cells"][1].update(mean=float("nan")), r"cell 1 'mean' must be a finite"),
        (lambda b: b["cells"][0].update(std=float("inf")), r"cell 0 'std' must be a finite"),
        (lambda b: b["cells"][0].update(mean=None), r"cell 0 'mean' must be a finite.*nothing"),
        (lambda b: b["cells"][0].update(mean="60"), r"cell 0 'mean' must be a finite"),
        (lambda b: b["cells"][0].update(mean=True), r"cell 0 'mean' must be a finite"),
        (lambda b: b["cells"][0].update(model=3), r"cell 0 'model' must be text"),
        (lambda b: b["cells"][0].update(setup=[]), r"cell 0 'setup' must be an object"),
    ],
)
def test_a_malformed_baseline_is_one_line_naming_the_file(tmp_path, edit, message):
    path = _baseline_file(tmp_path, edit)
    with pytest.raises(UserError, match=message) as caught:
        regression.read_baseline(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_update_into_an_impossible_path_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"cannot write baseline .*a-file/b.json"):
        regression.write_baseline(blocker / "b.json", _records(a=50.0))


def _one_fit(record, seeds=2):
    """`record` as written since seeds that share a probe fit share one entry."""
    scores = dataclasses.replace(record.scores, per_seed=[record.scores.mean], std=0.0, fits=1)
    protocol = dataclasses.replace(record.protocol, seeds=[0], seeds_requested=seeds)
    return dataclasses.replace(record, scores=scores, protocol=protocol)


def test_a_one_fit_record_compares_with_a_baseline_of_identical_seeds():
    """A baseline made when a deterministic probe wrote its one fit once per seed (std 0) still
    checks the record that lists it once: same seeds asked, same mean."""
    old = make_record("a", "t", 50.0, std=0.0, seeds=2)
    baseline = regression.make_baseline([old])
    assert baseline["cells"][0]["fits"] == 2 and baseline["cells"][0]["setup"]["seeds"] == 2
    checks, new = regression.check(baseline, [_one_fit(old)])
    assert _status(checks) == {"a": "ok"} and not new
    # a one-fit cell says so; the seeds asked stay the setup
    cell = regression.cell_of(_one_fit(old))
    assert cell["fits"] == 1 and cell["per_seed"] == [50.0] and cell["setup"]["seeds"] == 2


def test_tolerance_std_on_a_zero_std_cell_of_an_older_baseline_says_why():
    """An older baseline lists every seed of a shared fit: a std of 0, no `fits`."""
    same = make_record("a", "t", 50.0)
    same = dataclasses.replace(
        same, scores=dataclasses.replace(same.scores, per_seed=[50.0] * 5, std=0.0)
    )
    baseline = regression.make_baseline([same])
    for cell in baseline["cells"]:
        cell.pop("fits", None)
    checks, _ = regression.check(baseline, [make_record("a", "t", 49.5)], tolerance_std=2)
    assert checks[0].status == "dropped" and "std 0" in checks[0].detail


def test_tolerance_std_on_a_one_fit_cell_says_why_nothing_may_drop():
    baseline = regression.make_baseline([_one_fit(make_record("a", "t", 50.0))])
    checks, _ = regression.check(baseline, [_one_fit(make_record("a", "t", 49.5))], tolerance_std=2)
    assert checks[0].status == "dropped" and checks[0].allowed_drop == 0.0
    assert "one fit" in checks[0].detail and "--tolerance" in checks[0].detail
    checks, _ = regression.check(baseline, [_one_fit(make_record("a", "t", 49.5))])
    assert checks[0].status == "ok" and checks[0].detail == ""  # points: no note needed


def _segmentation(**means):
    """One dense-probe segmentation record per model on task seg (std 0.5)."""
    return [
        as_segmentation(make_record(model, "seg", mean, probe="dense"))
        for model, mean in means.items()
    ]


def test_a_segmentation_baseline_speaks_of_dice():
    baseline = regression.make_baseline(_segmentation(a=50.0, b=50.0))
    assert [c["metric"] for c in baseline["cells"]] == ["dice", "dice"]
    checks, _ = regression.check(baseline, _segmentation(a=47.0, b=50.0))
    assert [c.metric for c in checks] == ["dice", "dice"]
    how = regression.describe_tolerance(None, None, checks)
    assert how == "allowed drop 1.00 points of Dice"
    text = regression.report(checks, [], how)
    assert "(allowed drop 1.00 points of Dice): 1 dropped, 1 ok -> FAIL" in text
    assert "macro-F1" not in text and "| metric " not in text  # one metric: no column
    # the std rule names no metric; a classification baseline says macro-F1, as it always did
    assert regression.describe_tolerance(None, 2.0, checks) == "allowed drop 2 x the baseline std"
    classification, _ = regression.check(regression.make_baseline(_records(a=50.0)), [])
    assert regression.describe_tolerance(0.5, None, classification).endswith("of macro-F1")
    assert regression.describe_tolerance(0.5, None).endswith("of macro-F1")


def test_an_older_baseline_without_metrics_takes_the_records_metric():
    baseline = regression.make_baseline(_segmentation(a=50.0) + _records(b=60.0))
    for cell in baseline["cells"]:
        cell.pop("metric")
    checks, _ = regression.check(baseline, _segmentation(a=50.0))  # b is missing
    assert {c.model: c.metric for c in checks} == {"a": "dice", "b": "macro_f1"}
    how = regression.describe_tolerance(None, None, checks)
    assert how == "allowed drop 1.00 points of Dice or macro-F1"
    # both kinds in one baseline: a metric column says which cell is which
    lines = regression.report(checks, [], how).splitlines()
    assert lines[0].split("|")[5].strip() == "metric"
    rows = {line.split("|")[2].strip(): line.split("|")[5].strip() for line in lines[2:4]}
    assert rows == {"a": "Dice", "b": "macro-F1"}


def test_a_cell_metric_that_is_not_text_is_refused(tmp_path):
    path = _baseline_file(tmp_path, lambda b: b["cells"][0].update(metric=3))
    with pytest.raises(UserError, match=r"cell 0 'metric' must be text, got 3"):
        regression.read_baseline(path)
