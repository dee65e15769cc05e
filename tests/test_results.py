import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.results.record import (
    SCHEMA,
    protocol_id,
    read_records,
    record_path,
    write_record,
)


def _record(model="timm:vit", task="t1", protocol="linear", mean=50.0):
    return {
        "schema": SCHEMA,
        "model": {"name": model},
        "task": {"name": task},
        "protocol": {"id": protocol},
        "scores": {"mean": mean, "std": 1.0},
    }


def test_protocol_ids():
    assert protocol_id("linear", Budget(fraction=1.0)) == "linear"
    assert protocol_id("linear", Budget(fraction=0.1)) == "linear@10%"
    assert protocol_id("knn", Budget(shots=5)) == "knn@5-shot"
    assert (
        protocol_id("linear", Budget(fraction=1.0), "speckle-s3-seed0") == "linear/speckle-s3-seed0"
    )


def test_write_then_read(tmp_path):
    path = write_record(tmp_path, _record())
    assert path == record_path(tmp_path, "timm:vit", "t1", "linear")
    assert path.parent.parent.name == "timm_vit"
    (tmp_path / "leaderboard.json").write_text("{}")  # other JSON files are ignored
    assert read_records(tmp_path) == [_record()]


def test_missing_results_folder(tmp_path):
    with pytest.raises(UserError, match="results folder not found"):
        read_records(tmp_path / "none")
