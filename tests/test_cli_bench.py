"""`ubench bench` flags: checked before anything is written, and probe variants kept apart from
the default protocol."""

import json

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
