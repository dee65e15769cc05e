"""`ubench bench` flags: checked before anything is written, and probe variants kept apart from
the default protocol."""

import json
import os
import re
from pathlib import Path

import pytest
import torch
from conftest import card_folder, make_dataset

from ultrabench_eval.cli.parser import main
from ultrabench_eval.core.registry import TASKS


def _cards(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data", counts={"train": 12, "validation": 6, "test": 8})
    card_folder(tmp_path / "cards", card.name, card.dataset, monkeypatch)
    monkeypatch.setattr(TASKS, "_entries", {})


def _bench(tmp_path, *extra):
    return main(
        [
            "bench",
            "--model",
            "pixels",
            "--tasks",
            "toy",
            "--data",
            str(tmp_path / "data"),
            "--seeds",
            "1",
            "--fractions",
            "100",
            "--image-size",
            "16",
            "--device",
            "cpu",
            "--no-progress",
            "--results",
            str(tmp_path / "res"),
            *extra,
        ]
    )


def test_a_probe_variant_never_replaces_the_default_record(capsys, tmp_path, monkeypatch):
    _cards(tmp_path, monkeypatch)
    assert _bench(tmp_path) == 0
    default = tmp_path / "res" / "pixels" / "toy" / "us-jepa-2026.json"
    before = default.read_bytes()
    capsys.readouterr()

    assert _bench(tmp_path, "--probe-option", "max_epochs=1") == 0
    out = capsys.readouterr().out

    assert default.read_bytes() == before  # the default protocol's record is untouched
    variant = tmp_path / "res" / "pixels" / "toy" / "us-jepa-2026_max_epochs_1.json"
    record = json.loads(variant.read_text())
    assert record["protocol"]["id"] == "us-jepa-2026+max_epochs=1"
    assert record["protocol"]["probe_options"] == {"max_epochs": 1}
    assert "### us-jepa-2026+max_epochs=1: all training labels" in out
    # the folder's leaderboard titles each apart
    assert main(["leaderboard", "--results", str(tmp_path / "res")]) == 0
    board = capsys.readouterr().out
    assert "### us-jepa-2026+max_epochs=1:" in board and "### us-jepa-2026:" in board


def test_a_device_option_keeps_the_default_protocol_id(capsys, tmp_path, monkeypatch):
    _cards(tmp_path, monkeypatch)
    assert _bench(tmp_path, "--probe-option", "device=cpu") == 0
    names = sorted(p.name for p in (tmp_path / "res" / "pixels" / "toy").iterdir())
    assert names == ["us-jepa-2026.json"]


def test_empty_tasks_is_refused_not_the_default_suite(capsys, tmp_path):
    code = main(["bench", "--model", "pixels", "--tasks", "", "--data", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and "no task given" in err
    assert not (tmp_path / "d").exists()


def test_empty_model_is_refused_not_the_default_models(capsys, tmp_path):
    code = main(["bench", "--model", " , ", "--tasks", "toy", "--data", str(tmp_path / "d")])
    assert code == 2 and "no model given" in capsys.readouterr().err


def test_a_bad_flag_writes_no_generated_suite(capsys, tmp_path):
    new = tmp_path / "new"
    code = main(["bench", "--model", "pixels", "--data", str(new), "--seeds", "0"])
    assert code == 2 and "--seeds must be at least 1" in capsys.readouterr().err
    assert not new.exists()


def test_a_device_this_machine_lacks_is_refused_before_the_suite_is_written(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    new = tmp_path / "new"
    code = main(["bench", "--model", "pixels", "--data", str(new), "--device", "mps"])
    err = capsys.readouterr().err
    assert code == 2 and "'mps'" in err and len(err.strip().splitlines()) == 1
    assert not new.exists()


def test_extract_refuses_a_missing_device(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    code = main(["extract", "--model", "pixels", "--tasks", "toy", "--device", "mps"])
    assert code == 2 and "'mps'" in capsys.readouterr().err


STAGES = ["store", "features", "probes", "records"]


def test_bench_ends_with_one_timing_line_per_stage_on_stderr(capsys, tmp_path, monkeypatch):
    _cards(tmp_path, monkeypatch)
    assert _bench(tmp_path, "--probe", "linear", "--seeds", "3", "--fractions", "100,50") == 0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert [line.split()[0] for line in lines[-4:]] == STAGES
    store, features, probes, records = lines[-4:]
    assert store.split()[2:5] == ["s", "26", "images"]  # 12 + 6 + 8, stores built or opened
    assert features.split()[3:5] == ["26", "images"] and "(26 extracted, 0 from the cache)" in (
        features
    )
    assert probes.split()[3:5] == ["4", "fits"] and "(6 budget x seed cells)" in probes
    assert records.split()[3:5] == ["2", "records"] and "(2 written, 0 reused)" in records
    assert not any(stage in out for stage in ("budget x seed", "from the cache"))  # stdout: tables
    # the leaderboard shows the one fit at all labels as such
    assert "(1 fit)" in out and "± 0.0" not in out
    # and the records keep what their stages took
    full = json.loads((tmp_path / "res" / "pixels" / "toy" / "linear.json").read_text())
    assert full["scores"]["fits"] == 1 and full["protocol"]["seeds_requested"] == 3
    assert full["timings"]["probe_fits"] == 4 and full["timings"]["store_images"] == 26


def test_profile_writes_a_pstats_trace_of_the_run(capsys, tmp_path, monkeypatch):
    import pstats

    _cards(tmp_path, monkeypatch)
    path = tmp_path / "run.prof"
    assert _bench(tmp_path, "--profile", str(path)) == 0
    err = capsys.readouterr().err
    stats = pstats.Stats(str(path))
    functions = {(Path(file).name, name) for file, _, name in stats.stats}
    assert ("bench.py", "run") in functions and ("bench.py", "_run_task") in functions
    assert f"python -m pstats {path}" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run.prof")] == []


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("missing/run.prof", r"folder .*missing does not exist"),
        ("a-file/run.prof", r"folder .*a-file is a file, not a folder"),
        (".", r"is a folder: give a file name"),
        ("", r"--profile needs a file name"),
        ("a-pipe", r"a-pipe is not a regular file"),
        ("link-to-pipe", r"link-to-pipe is not a regular file"),
    ],
)
def test_a_bad_profile_path_is_one_line_before_any_work(
    capsys, tmp_path, monkeypatch, where, message
):
    _cards(tmp_path, monkeypatch)
    (tmp_path / "a-file").write_text("x")
    os.mkfifo(tmp_path / "a-pipe")  # like /dev/null: never to be replaced by a file
    (tmp_path / "link-to-pipe").symlink_to(tmp_path / "a-pipe")
    target = str(tmp_path / where) if where else ""
    code = _bench(tmp_path, "--profile", target)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err) and err.startswith("ubench bench: error: --profile")
    assert not (tmp_path / "res").exists()


def test_a_profile_through_a_link_replaces_its_target_and_keeps_the_link(
    capsys, tmp_path, monkeypatch
):
    import pstats

    _cards(tmp_path, monkeypatch)
    (tmp_path / "profiles").mkdir()
    target = tmp_path / "profiles" / "run.prof"
    target.write_text("old")
    link = tmp_path / "run.prof"
    link.symlink_to(target)
    assert _bench(tmp_path, "--profile", str(link)) == 0
    capsys.readouterr()
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert pstats.Stats(str(target)).total_calls > 0


def test_bench_help_says_how_to_read_a_profile(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--profile PATH" in text and "python -m pstats PATH" in text and "cProfile" in text
