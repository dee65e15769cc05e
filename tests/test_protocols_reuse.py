"""Record reuse: one function behind the bench and the robustness protocol."""

from result_records import make_record

from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.protocols.reuse import Expected, reusable_records
from ultrabench_eval.results.record import ResultRecord, record_path, write_record


def _config(tmp_path, overwrite=False):
    return BenchConfig(
        models=["m"],
        tasks=["t"],
        data_root=tmp_path / "data",
        cache_root=tmp_path / "cache",
        results_root=tmp_path / "results",
        overwrite=overwrite,
    )


def _written(tmp_path, protocol_view, digest):
    data = make_record("m", "t", 50.0, view=protocol_view).to_dict()
    data["inputs_sha256"] = digest
    record = ResultRecord.from_dict(data)
    write_record(tmp_path / "results", record)
    return record


def test_only_records_with_the_expected_inputs_are_reused(tmp_path):
    clean = _written(tmp_path, "clean", "aaa")
    _written(tmp_path, "blur-s1", "bbb")
    expected = {
        "clean": Expected("linear", "aaa"),
        "blur": Expected("linear/blur-s1", "changed"),  # its inputs changed: redone
        "jpeg": Expected("linear/jpeg-s1", "ccc"),  # never written
    }
    assert reusable_records(_config(tmp_path), "m", "t", expected) == {"clean": clean}
    assert reusable_records(_config(tmp_path, overwrite=True), "m", "t", expected) == {}


def test_a_broken_record_file_is_redone_not_an_error(tmp_path):
    path = record_path(tmp_path / "results", "m", "t", "linear")
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": "ultrabench-eval/result/1", "model": ')
    expected = {"clean": Expected("linear", "aaa")}
    assert reusable_records(_config(tmp_path), "m", "t", expected) == {}
    path.write_text('{"schema": "ultrabench-eval/result/1"}')
    assert reusable_records(_config(tmp_path), "m", "t", expected) == {}
