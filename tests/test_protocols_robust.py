"""The robustness protocol: probe fitted once on clean features, records per corrupted view,
summary scores (`results.robustness`, rendered by `report.robustness`), and `ubench robust`."""

import json

import numpy as np
import pytest
from conftest import make_dataset
from result_records import as_segmentation, make_record

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.corruptions.base import frozen
from ultrabench_eval.corruptions.intensity import ContrastDepletion
from ultrabench_eval.protocols import bench, robust
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.report import leaderboard
from ultrabench_eval.report import robustness as robustness_table
from ultrabench_eval.results import robustness
from ultrabench_eval.results.record import read_records


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A small task with sector-shaped scan masks, its card found through UBENCH_TASKS."""
    card = make_dataset(
        tmp_path / "data", counts={"train": 16, "validation": 6, "test": 10}, size=(48, 48)
    )
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(f"name: toy\ndataset: {card.dataset}\nclasses: [a, b]\n")
    monkeypatch.setenv("UBENCH_TASKS", str(cards))
    monkeypatch.setattr(TASKS, "_populated", False)
    return tmp_path


def _bench(root, **overrides):
    values = {
        "models": ["pixels"],
        "tasks": ["toy"],
        "data_root": root / "data",
        "cache_root": root / "cache",
        "results_root": root / "results",
        "seeds": 2,
        "probe": "us-jepa-2026",
        "fractions": (1.0,),
        "image_size": 48,
        "progress": False,
    }
    values.update(overrides)
    return BenchConfig(**values)


SUITE = [("contrast", 1), ("contrast", 4), ("speckle+shadow", 2)]


def test_a_record_per_view_with_the_clean_probe(toy):
    config = robust.RobustConfig(_bench(toy), SUITE, reference="pixels")
    records = robust.run(config, log=lambda _: None)
    by_id = {r.protocol_id: r for r in records}
    assert list(by_id) == [
        "us-jepa-2026",
        "us-jepa-2026/contrast-s1",
        "us-jepa-2026/contrast-s4",
        "us-jepa-2026/speckle+shadow-s2",
    ]
    corrupted = by_id["us-jepa-2026/contrast-s4"]
    assert corrupted.view == "contrast-s4" and corrupted.corruption == ("contrast", 4)
    view = corrupted.protocol.corruption
    assert view.seed == 0 and view.parameters == {"contrast": {"alpha": 0.35}}
    assert view.view_key.startswith("contrast-s4-seed0-")
    assert len(corrupted.test.predictions_per_seed) == 2
    assert len(corrupted.test.predictions_per_seed[0]) == 10
    # one probe fit: the same validation answers, hyper-parameters and training size
    clean = by_id["us-jepa-2026"]
    assert corrupted.scores.val_per_seed == clean.scores.val_per_seed
    assert corrupted.hyperparameters_per_seed == clean.hyperparameters_per_seed
    assert corrupted.train_size_per_seed == clean.train_size_per_seed
    # where each stage ran, in every record
    for record in (clean, corrupted):
        assert record.stages["extraction"]["precision"] in ("fp32", "bf16", "fp16")
        assert record.stages["extraction"]["device"] and record.stages["probe"]["device"]
    assert read_records(toy / "results") == records
    # the clean record is the bench's: the same scores and predictions
    bench_records = bench.run(_bench(toy, results_root=toy / "bench"), log=lambda _: None)
    assert bench_records[0].scores.per_seed == clean.scores.per_seed
    assert bench_records[0].inputs_sha256 == clean.inputs_sha256


def test_second_run_reuses_and_a_changed_corruption_is_redone(toy, monkeypatch):
    config = robust.RobustConfig(_bench(toy), SUITE[:2], reference=None)
    robust.run(config, log=lambda _: None)
    lines = []
    robust.run(config, log=lines.append)
    assert all(line.endswith("reused record") for line in lines)
    monkeypatch.setattr(ContrastDepletion, "table", frozen({"alpha": (0.9, 0.8, 0.7, 0.6, 0.5)}))
    lines = []
    records = robust.run(config, log=lines.append)
    # the probe refits, but the clean record's inputs are unchanged: it stays
    assert [line.rsplit("| ", 1)[1] for line in lines] == ["reused record", "written", "written"]
    assert records[2].protocol.corruption.parameters == {"contrast": {"alpha": 0.6}}


def _record(model, task, view, corruption, score):
    return make_record(model, task, score, probe="p", view=view, corruption=corruption, severity=1)


def test_summary_scores_by_hand():
    records = [
        _record("a", "t", "clean", None, 80.0),
        _record("a", "t", "blur-s1", "blur", 70.0),
        _record("a", "t", "blur-s2", "blur", 60.0),
        _record("a", "t", "jpeg-s1", "jpeg", 50.0),
        _record("ref", "t", "clean", None, 60.0),
        _record("ref", "t", "blur-s1", "blur", 50.0),
        _record("ref", "t", "blur-s2", "blur", 40.0),
        _record("ref", "t", "jpeg-s1", "jpeg", 75.0),
    ]
    summaries = robustness.summarise(records, reference="ref")
    summary = summaries["t"]
    a = summary["a"]
    assert a.per_corruption == {"blur": 65.0, "jpeg": 50.0}
    assert a.mean_corrupted == pytest.approx(60.0)
    assert a.relative_drop == pytest.approx(25.0)
    # CE: summed errors relative to the reference's, x100
    assert a.corruption_error["blur"] == pytest.approx(100 * (30 + 40) / (50 + 60))
    assert a.corruption_error["jpeg"] == pytest.approx(100 * 50 / 25)
    assert a.mce == pytest.approx(np.mean([100 * 70 / 110, 200.0]))
    assert summary["ref"].mce == pytest.approx(100.0)
    no_ref = robustness.summarise(records, reference=None)["t"]["a"]
    assert no_ref.mce is None
    table = robustness_table.render(summaries, "ref", "test suite")
    assert "| model " in table and "| blur " in table and "| 25.0 % " in table


def test_a_segmentation_table_speaks_of_dice():
    records = [
        as_segmentation(_record("a", "seg", "clean", None, 60.0)),
        as_segmentation(_record("a", "seg", "blur-s1", "blur", 45.0)),
        _record("a", "cls", "clean", None, 80.0),
        _record("a", "cls", "blur-s1", "blur", 70.0),
    ]
    summaries = robustness.summarise(records, reference=None)
    assert summaries["seg"]["a"].metric == "dice" and summaries["cls"]["a"].metric == "macro_f1"
    assert summaries["seg"]["a"].relative_drop == pytest.approx(25.0)
    seg, cls = robustness_table.render(summaries, None, "blur").split("### ")[1:][::-1]
    assert seg.startswith("seg, blur: test Dice (x100)") and "(100 - Dice)" in seg
    assert cls.startswith("cls, blur: test macro-F1 (x100)") and "(100 - macro-F1)" in cls
    assert "Dice" not in cls and "macro-F1" not in seg
    across = robustness.across_tasks(robustness.summarise_cells(records))
    assert across["a"].metric == robustness.MIXED


def test_the_robust_table_and_the_leaderboard_agree():
    """Both render one computation: on one task, the same per-corruption means, clean score,
    mean corrupted score and relative drop."""
    records = [
        _record("a", "t", "clean", None, 80.0),
        _record("a", "t", "blur-s1", "blur", 71.0),
        _record("a", "t", "blur-s2", "blur", 60.5),
        _record("a", "t", "jpeg-s1", "jpeg", 50.0),
        _record("b", "t", "clean", None, 60.0),
        _record("b", "t", "blur-s1", "blur", 50.0),
        _record("b", "t", "jpeg-s1", "jpeg", 75.0),
    ]
    [table] = [t for t in leaderboard.build_tables(records) if t.name == "p robustness"]
    board = {model: [c.value for c in cells] for model, cells in table.rows}
    summaries = robustness.summarise(records, reference=None)["t"]
    for model, s in summaries.items():
        assert board[model] == [
            s.per_corruption["blur"],
            s.per_corruption["jpeg"],
            s.clean,
            s.mean_corrupted,
            s.relative_drop,
        ]
    assert summaries["a"].mean_corrupted == pytest.approx((71.0 + 60.5 + 50.0) / 3)


def test_a_corrupted_view_is_compared_with_the_clean_record_of_its_own_protocol():
    records = [
        _record("a", "t", "clean", None, 80.0),
        make_record("a", "t", 10.0, probe="other"),  # another protocol's clean record
        _record("a", "t", "blur-s1", "blur", 60.0),
        make_record("a", "t", 5.0, probe="other", view="blur-s1", corruption="blur", severity=1),
    ]
    assert robustness.summarise(records[:3], reference=None)["t"]["a"].clean == 80.0
    by_protocol = {
        t.name: [c.value for c in t.rows[0][1]] for t in leaderboard.build_tables(records)
    }
    assert by_protocol["p robustness"][1:3] == [80.0, 60.0]
    assert by_protocol["other robustness"][1:3] == [10.0, 5.0]


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_command_prints_a_table_per_task_and_writes_records(toy, capsys):
    code, out, err = _cli(
        capsys,
        "robust",
        "--model",
        "pixels",
        "--tasks",
        "toy",
        "--data",
        str(toy / "data"),
        "--cache",
        str(toy / "cache"),
        "--results",
        str(toy / "res"),
        "--corruptions",
        "contrast,us-jepa-blur",
        "--severities",
        "1-2",
        "--seeds",
        "2",
        "--image-size",
        "48",
        "--no-progress",
    )
    assert code == 0, err
    assert out.startswith("### toy, contrast, us-jepa-blur:")
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    for column in ("clean", "contrast", "us-jepa-blur", "mean", "drop", "mCE (ref pixels)"):
        assert f" {column} " in header
    assert (toy / "res" / "robustness.md").read_text() == out
    written = json.loads(
        (toy / "res" / "pixels" / "toy" / "us-jepa-2026_contrast-s2.json").read_text()
    )
    assert written["protocol"]["severity"] == 2  # the file itself, as other tools read it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corruptions", "sparkle"], "unknown corruption 'sparkle'"),
        (["--preset", "us-jepa-2026", "--severities", "1-5"], "severities 1..3, not 4"),
        (["--preset", "us-jepa-2026", "--corruptions", "blur"], "either --corruptions"),
        (["--preset", "nope"], "unknown corruption preset 'nope'"),
        (["--corruptions", "blur", "--fractions", "50"], "drop --fractions"),
        (["--corruptions", "blur", "--severities", "x"], "--severities 'x'"),
        (["--corruptions", "blur", "--reference", "nope"], "unknown model 'nope'"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_write_nothing(toy, capsys, extra, message):
    argv = ["robust", "--model", "pixels", "--tasks", "toy", "--data", str(toy / "data")]
    code, _, err = _cli(capsys, *argv, "--results", str(toy / "res"), *extra)
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("ubench robust: error:")
    assert not (toy / "res").exists()


def test_a_seedless_probe_is_one_fit_in_every_view_record(toy):
    """linear ignores the seed and the protocol trains on every clean label: one fit, recorded
    once in the clean record and in each corrupted one, of the seeds asked."""
    config = robust.RobustConfig(_bench(toy, probe="linear", seeds=3), SUITE[:2], reference=None)
    lines = []
    records = robust.run(config, log=lines.append)
    assert len(records) == 3
    for record in records:
        assert record.scores.fits == 1 and record.protocol.seeds == [0]
        assert record.seed_count == 3 and record.scores.std == 0.0
        assert len(record.scores.per_seed) == len(record.test.predictions_per_seed) == 1
        assert record.timings["probe_fits"] == 1 and record.timings["probe_problems"] == 3
        assert set(record.timings["features_images"]) == {
            "train",
            "validation",
            "test",
            "test/contrast-s1",
            "test/contrast-s4",
        }
    assert all("(1 fit) |" in line and "±" not in line for line in lines)
    seeded = robust.run(
        robust.RobustConfig(
            _bench(toy, seeds=2, results_root=toy / "seeded"), SUITE[:1], reference=None
        ),
        log=lambda _: None,
    )
    assert [r.scores.fits for r in seeded] == [2, 2]
