"""The typed result record: its JSON, the files written before it existed, its accessors and
the one-line errors on malformed files."""

import json
import re
from pathlib import Path

import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.results.record import (
    SCHEMA,
    ResultRecord,
    protocol_id,
    read_records,
    record_path,
    write_record,
)

# Written by the bench and `ubench robust` before the record was typed (pixels on synth-view,
# linear probe, 2 seeds: all labels, 50 %, 4 shots, and speckle at severity 2).
V1 = Path(__file__).parent / "data" / "records_v1"
V1_FILES = sorted(V1.rglob("*.json"))


def _record(model="timm:vit", task="t1", protocol="linear", mean=50.0):
    return ResultRecord.from_dict(
        {
            "schema": SCHEMA,
            "model": {"name": model},
            "task": {"name": task},
            "protocol": {"id": protocol, "probe": "linear"},
            "scores": {"mean": mean, "std": 1.0},
        }
    )


def _v1(name):
    return ResultRecord.from_file(V1 / "pixels" / "synth-view" / f"{name}.json")


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


@pytest.mark.parametrize("path", V1_FILES, ids=[p.stem for p in V1_FILES])
def test_files_written_before_the_typed_record_read_and_write_back_byte_for_byte(path, tmp_path):
    assert len(V1_FILES) == 4
    record = ResultRecord.from_file(path)
    assert record.to_dict() == json.loads(path.read_text())
    assert list(record.to_dict()) == list(json.loads(path.read_text()))  # the key order too
    written = write_record(tmp_path, record)
    assert written.relative_to(tmp_path) == path.relative_to(V1)
    assert written.read_bytes() == path.read_bytes()


def test_accessors_of_a_clean_record():
    record = _v1("linear")
    assert (record.model_name, record.task_name, record.protocol_id) == (
        "pixels",
        "synth-view",
        "linear",
    )
    assert record.probe == "linear" and record.is_clean and record.view == "clean"
    assert record.base_protocol == "linear"
    assert record.budget == Budget(fraction=1.0) and record.is_full_budget
    assert record.n_classes == 4 and record.seed_count == 2 and record.has_predictions
    assert record.scores.mean == pytest.approx(sum(record.scores.per_seed) / 2)
    assert len(record.test.predictions_per_seed) == 2


def test_accessors_of_budgets_and_a_corrupted_view():
    half, shots = _v1("linear_50_"), _v1("linear_4-shot")
    assert half.budget == Budget(fraction=0.5) and not half.is_full_budget
    assert half.protocol_id == "linear@50%" and half.base_protocol == "linear@50%"
    assert shots.budget == Budget(shots=4) and not shots.is_full_budget
    corrupted = _v1("linear_speckle-s2")
    assert not corrupted.is_clean and corrupted.view == "speckle-s2"
    assert corrupted.base_protocol == "linear"
    assert corrupted.corruption == ("speckle", 2)
    assert corrupted.protocol.corruption.view_key.startswith("speckle-s2-seed0-")
    assert corrupted.protocol.corruption.parameters["speckle"]


def test_a_view_without_corruption_fields_is_parsed_from_its_name():
    data = _v1("linear").to_dict()
    data["protocol"].update(id="linear/blur-s3-seed1", view="blur-s3-seed1")
    record = ResultRecord.from_dict(data)
    assert record.corruption == ("blur", 3) and record.base_protocol == "linear"
    data["protocol"].update(id="linear/odd", view="odd")
    assert ResultRecord.from_dict(data).corruption == ("odd", None)


def test_an_older_record_without_the_later_fields_reads():
    """The first records had no budget, shots, view, test predictions or bootstrap interval."""
    data = {
        "schema": SCHEMA,
        "model": {"name": "hog", "fingerprint": "f", "pooling": "raw"},
        "task": {"name": "t", "classes": ["a", "b"]},
        "protocol": {"id": "linear@10%", "probe": "linear", "fraction": 0.1, "image_size": 64},
        "scores": {"mean": 40.0, "std": 2.0, "per_seed": [38.0, 42.0]},
    }
    record = ResultRecord.from_dict(data)
    assert record.view == "clean" and record.budget == Budget(fraction=0.1)
    assert record.test is None and not record.has_predictions and record.seed_count == 2
    assert record.scores.ci95 is None and record.inputs_sha256 is None
    again = ResultRecord.from_dict(record.to_dict())
    assert again == record  # what it lacks is written as null and read back as absent


def _malformed(tmp_path, edit):
    data = _v1("linear").to_dict()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError) as caught:
        ResultRecord.from_file(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_malformed_records_are_one_line_errors(tmp_path):
    assert "'scores.mean' is missing" in _malformed(tmp_path, lambda d: d["scores"].pop("mean"))
    assert "'model' is missing or not an object" in _malformed(
        tmp_path, lambda d: d.update(model="pixels")
    )
    assert "'scores.std' should be int or float" in _malformed(
        tmp_path, lambda d: d["scores"].update(std="1.0")
    )
    assert "'severity' should be int" in _malformed(
        tmp_path, lambda d: d["protocol"].update(corruption="blur", severity=True)
    )
    assert "fraction must be in (0, 1]" in _malformed(
        tmp_path, lambda d: d["protocol"].update(fraction=2.0)
    )
    assert "not a ubench result record" in _malformed(
        tmp_path, lambda d: d.update(schema="other/1")
    )
    (tmp_path / "cut.json").write_text('{"schema": ')
    with pytest.raises(UserError, match="cannot read result record"):
        ResultRecord.from_file(tmp_path / "cut.json")


def test_read_records_names_the_malformed_file(tmp_path):
    write_record(tmp_path, _record())
    broken = _v1("linear").to_dict()
    del broken["protocol"]["probe"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(UserError, match=r"broken\.json: 'protocol\.probe' is missing"):
        read_records(tmp_path)


# probe options that change the numbers name a protocol variant.
FULL = Budget(fraction=1.0)


def test_the_default_protocol_keeps_its_id_and_path(tmp_path):
    for options in (None, {}, {"device": "cpu"}, {"device": "cuda:1"}):
        assert protocol_id("us-jepa-2026", FULL, options=options) == "us-jepa-2026"
        assert protocol_id("linear", Budget(fraction=0.1), options=options) == "linear@10%"
    path = record_path(tmp_path, "pixels", "t", protocol_id("us-jepa-2026", FULL, options={}))
    assert path == tmp_path / "pixels" / "t" / "us-jepa-2026.json"


def test_options_that_change_the_numbers_name_a_variant():
    variant = protocol_id("us-jepa-2026", FULL, options={"max_epochs": 1, "device": "cpu"})
    assert variant == "us-jepa-2026+max_epochs=1"
    both = {"standardize": True, "max_epochs": 1}
    assert protocol_id("mlp", Budget(fraction=0.1), "speckle-s2", both) == (
        "mlp+max_epochs=1+standardize=true@10%/speckle-s2"
    )
    assert protocol_id("linear", FULL, options={"backend": "sklearn"}) == "linear+backend=sklearn"
    # 1 and 1.0 and "1" are different options; each its own id
    ids = {protocol_id("x", FULL, options={"k": v}) for v in (1, 1.0, "1", True, "true")}
    assert len(ids) == 5


def test_options_that_cannot_be_written_plainly_give_a_stable_digest(tmp_path):
    grid = protocol_id("linear", FULL, options={"Cs": [0.1, 1.0]})
    assert re.fullmatch(r"linear\+options-[0-9a-f]{10}", grid)
    assert grid == protocol_id("linear", FULL, options={"Cs": [0.1, 1.0]})
    assert grid != protocol_id("linear", FULL, options={"Cs": [0.1, 2.0]})
    # a text value that would read as two options is not written as is
    tricky = protocol_id("x", FULL, options={"a": "1+b=2"})
    assert tricky != protocol_id("x", FULL, options={"a": 1, "b": 2})
    assert "options-" in tricky
    # every variant is a distinct file
    paths = {record_path(tmp_path, "m", "t", p) for p in (grid, tricky, "linear")}
    assert len(paths) == 3


# a record's numbers are finite numbers.
@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({"mean": float("nan"), "std": 1.0}, r"'scores.mean' should be a finite number"),
        ({"mean": 50.0, "std": float("inf")}, r"'scores.std' should be a finite number"),
        ({"mean": "high", "std": 1.0}, r"'scores.mean' should be int or float"),
        ({"mean": 50.0, "std": 1.0, "per_seed": [50, "x"]}, r"'per_seed\[1\]' should be"),
        ({"mean": 50.0, "std": 1.0, "ci95": [float("nan"), 1]}, r"'ci95\[0\]' should be a"),
    ],
)
def test_scores_must_be_finite_numbers(scores, message):
    data = _record().to_dict()
    data["scores"].update(scores)
    with pytest.raises(UserError, match=message) as caught:
        ResultRecord.from_dict(data, "r.json")
    assert "r.json" in str(caught.value)


def test_a_record_without_model_names_the_file(tmp_path):
    data = _record().to_dict()
    del data["model"]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "r.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"r\.json.*'model' is missing"):
        read_records(tmp_path)


# seeds that share one probe fit share one entry; `scores.fits` says how many fits there are.
def _one_fit(seeds_requested=5):
    data = _v1("linear").to_dict()
    for key in ("per_seed", "val_per_seed"):
        data["scores"][key] = data["scores"][key][:1]
    data["scores"].update(std=0.0, fits=1)
    data["protocol"].update(seeds=[0], seeds_requested=seeds_requested)
    data["test"]["predictions_per_seed"] = data["test"]["predictions_per_seed"][:1]
    data["hyperparameters"]["per_seed"] = data["hyperparameters"]["per_seed"][:1]
    data["train_size_per_seed"] = data["train_size_per_seed"][:1]
    return data


def test_a_one_fit_record_says_so_and_round_trips():
    data = _one_fit()
    record = ResultRecord.from_dict(data)
    assert record.scores.fits == 1 and record.fit_count == 1 and record.scores.single_fit
    assert record.seed_count == 5 and record.protocol.seeds == [0]
    assert record.scores.spread is None and record.scores.std == 0.0  # the schema's number
    assert record.scores.text() == f"{record.scores.mean:.1f} (1 fit)"
    assert record.to_dict() == data
    # the new fields sit beside the ones they describe
    assert list(record.to_dict()["scores"])[:5] == ["metric", "per_seed", "mean", "std", "fits"]
    protocol = list(record.to_dict()["protocol"])
    assert protocol[protocol.index("seeds") + 1] == "seeds_requested"


@pytest.mark.parametrize("path", V1_FILES, ids=[p.stem for p in V1_FILES])
def test_an_older_record_counts_one_fit_per_seed_and_gains_no_field(path):
    record = ResultRecord.from_file(path)
    assert record.scores.fits is None and record.protocol.seeds_requested is None
    assert record.fit_count == len(record.scores.per_seed) == record.seed_count == 2
    assert not record.scores.single_fit and record.scores.spread == record.scores.std
    assert "±" in record.scores.text()
    data = record.to_dict()
    assert "fits" not in data["scores"] and "seeds_requested" not in data["protocol"]


def test_an_older_single_seed_record_is_one_fit():
    data = _v1("linear").to_dict()
    data["scores"]["per_seed"] = data["scores"]["per_seed"][:1]
    data["protocol"]["seeds"] = [0]
    record = ResultRecord.from_dict(data)
    assert record.fit_count == 1 and record.seed_count == 1 and record.scores.single_fit


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("scores", {"fits": 0}, r"'fits' should be at least 1"),
        ("scores", {"fits": True}, r"'fits' should be int"),
        ("scores", {"fits": 1.5}, r"'fits' should be int"),
        ("protocol", {"seeds_requested": -2}, r"'seeds_requested' should be at least 1"),
        ("protocol", {"seeds_requested": "5"}, r"'seeds_requested' should be int"),
    ],
)
def test_a_bad_fit_or_seed_count_is_a_one_line_error(tmp_path, where, value, message):
    assert re.search(message, _malformed(tmp_path, lambda d: d[where].update(value)))


def test_a_record_without_per_seed_scores_is_not_taken_for_one_fit():
    record = _record()  # mean and std only, as the first records had
    assert record.fit_count is None and not record.scores.single_fit
    assert record.scores.text() == "50.0 ± 1.0"
