"""The robustness protocol: probe fitted once on clean features, records per corrupted view,
summary scores, and `ubench robust`."""

import json

import numpy as np
import pytest
from conftest import make_dataset

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.registry import TASKS
from ultrabench_eval.corruptions.base import frozen
from ultrabench_eval.corruptions.intensity import ContrastDepletion
from ultrabench_eval.protocols import bench, robust
from ultrabench_eval.protocols.config import BenchConfig
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
    by_id = {r["protocol"]["id"]: r for r in records}
    assert list(by_id) == [
        "us-jepa-2026",
        "us-jepa-2026/contrast-s1",
        "us-jepa-2026/contrast-s4",
        "us-jepa-2026/speckle+shadow-s2",
    ]
    corrupted = by_id["us-jepa-2026/contrast-s4"]
    protocol = corrupted["protocol"]
    assert protocol["view"] == "contrast-s4" and protocol["corruption"] == "contrast"
    assert protocol["severity"] == 4 and protocol["corruption_seed"] == 0
    assert protocol["corruption_parameters"] == {"contrast": {"alpha": 0.35}}
    assert protocol["view_key"].startswith("contrast-s4-seed0-")
    assert len(corrupted["test"]["predictions_per_seed"]) == 2
    assert len(corrupted["test"]["predictions_per_seed"][0]) == 10
    # one probe fit: the same validation answers, hyper-parameters and training size
    clean = by_id["us-jepa-2026"]
    assert corrupted["scores"]["val_per_seed"] == clean["scores"]["val_per_seed"]
    assert corrupted["hyperparameters"] == clean["hyperparameters"]
    assert read_records(toy / "results") and len(read_records(toy / "results")) == 4
    # the clean record is the bench's: the same scores and predictions
    bench_records = bench.run(_bench(toy, results_root=toy / "bench"), log=lambda _: None)
    assert bench_records[0]["scores"]["per_seed"] == clean["scores"]["per_seed"]
    assert bench_records[0]["inputs_sha256"] == clean["inputs_sha256"]


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
    assert records[2]["protocol"]["corruption_parameters"] == {"contrast": {"alpha": 0.6}}


def _record(model, task, view, corruption, score):
    protocol = {"id": "p" if view == "clean" else f"p/{view}", "view": view}
    if corruption:
        protocol["corruption"] = corruption
    return {
        "model": {"name": model},
        "task": {"name": task},
        "protocol": protocol,
        "scores": {"mean": score},
    }


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
    summaries = robust.summarise(records, reference="ref")
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
    no_ref = robust.summarise(records, reference=None)["t"]["a"]
    assert no_ref.mce is None
    table = robust.render(summaries, "ref", "test suite")
    assert "| model " in table and "| blur " in table and "| 25.0 % " in table


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
    assert written["protocol"]["severity"] == 2


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
