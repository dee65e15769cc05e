"""`ubench export NAME --out DIR`: a line per split, where it went, what next; mistakes are one
line and exit code 2."""

from __future__ import annotations

import pytest
from conftest import card_folder, make_dataset

from ultrabench_eval.cli import main
from ultrabench_eval.core.registry import TASKS


def _cards(tmp_path, monkeypatch):
    card = make_dataset(tmp_path / "data")
    card_folder(tmp_path / "cards", card.name, card.dataset, monkeypatch)
    monkeypatch.setattr(TASKS, "_entries", {})
    return card


def test_export_prints_a_line_per_split_and_what_next(tmp_path, monkeypatch, capsys):
    _cards(tmp_path, monkeypatch)
    out = tmp_path / "hf" / "toy"
    code = main(["export", "toy", "--out", str(out), "--data", str(tmp_path / "data")])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("train: 8 rows, 1 shard, ")
    assert lines[0].endswith(" MB")
    assert lines[1].startswith("validation: 4 rows, 1 shard, ")
    assert lines[2].startswith("test: 6 rows, 1 shard, ")
    assert lines[3] == f"exported toy to {out}"
    assert lines[4].startswith("next: ")
    assert f"huggingface-cli upload ORG/NAME {out} --repo-type dataset" in lines[4]
    assert f"load it back with `ubench bench --data {out}`" in lines[4]
    assert len(lines) == 5
    assert (out / "ubench-task.yaml").is_file()
    assert len(list((out / "data").glob("*.parquet"))) == 3


def test_a_second_export_needs_overwrite(tmp_path, monkeypatch, capsys):
    _cards(tmp_path, monkeypatch)
    args = ["export", "toy", "--out", str(tmp_path / "hf"), "--data", str(tmp_path / "data")]
    assert main(args) == 0
    capsys.readouterr()

    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "exists and is not empty: pass --overwrite" in err

    assert main([*args, "--overwrite", "--max-shard-size", "0.001"]) == 0
    assert "train: 8 rows, 8 shards" in capsys.readouterr().out


def test_an_unknown_task_is_one_line(tmp_path, capsys):
    code = main(["export", "no-such-task", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("ubench export: error: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", ["0", "-5", "nan", "big"])
def test_a_shard_size_not_above_zero_is_one_line(tmp_path, capsys, size):
    with pytest.raises(SystemExit) as caught:
        main(["export", "toy", "--out", str(tmp_path / "out"), "--max-shard-size", size])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--max-shard-size takes a number of MB above 0" in err
