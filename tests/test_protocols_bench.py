"""The slice end to end: generated suite -> store -> features -> probe -> records."""

import json

import numpy as np
import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.synth import generate_missing_synth, write_suite
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.protocols import bench
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.results.record import ResultRecord, read_records

SYNTH = ["synth-lesion", "synth-texture", "synth-view"]


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    write_suite(root, seed=0, num_images=60, image_size=64, workers=2)
    return root


def _config(tmp_path, data, **overrides):
    values = {
        "models": ["pixels", "hog"],
        "tasks": SYNTH,
        "data_root": data,
        "cache_root": tmp_path / "cache",
        "results_root": tmp_path / "results",
        "seeds": 3,
        "probe": "linear",
        "fractions": (1.0, 0.5),
        "image_size": 64,
        "progress": False,
    }
    values.update(overrides)
    return BenchConfig(**values)


def _scores(records):
    return {(r.model_name, r.task_name, r.protocol_id): r.scores.per_seed for r in records}


def test_records_for_every_model_task_and_fraction(small_suite, tmp_path):
    records = bench.run(_config(tmp_path, small_suite), log=lambda _: None)
    assert len(records) == 2 * 3 * 2
    on_disk = read_records(tmp_path / "results")
    assert _scores(on_disk) == _scores(records)
    record = next(r for r in records if r.protocol_id == "linear@50%")
    assert record.budget == Budget(fraction=0.5) and record.protocol.budget == "50%"
    assert len(record.scores.per_seed) == 3
    assert record.train_size_per_seed[0] < record.task.split_sizes["train"]
    assert record.model.fingerprint and record.versions["torch"]
    params = record.hyperparameters_per_seed[0]
    assert params["C"] in params["C_grid"]
    scores = np.array(record.scores.per_seed)
    assert record.scores.mean == pytest.approx(scores.mean())
    assert record.scores.std == pytest.approx(scores.std(ddof=1))


def test_a_record_file_is_the_typed_record_json(small_suite, tmp_path):
    config = _config(tmp_path, small_suite, models=["pixels"], tasks=["synth-view"], seeds=2)
    [full, half] = bench.run(config, log=lambda _: None)
    for record in (full, half):
        path = tmp_path / "results" / "pixels" / "synth-view" / f"{record.protocol_id}.json"
        path = path.with_name(path.name.replace("@", "_").replace("%", "_"))
        data = json.loads(path.read_text())
        assert ResultRecord.from_file(path).to_dict() == data
        assert ResultRecord.from_file(path) == record
        assert path.read_text() == json.dumps(data, indent=2) + "\n"


def test_second_run_reuses_records_or_cached_features(small_suite, tmp_path):
    logs = []
    first = bench.run(_config(tmp_path, small_suite), log=logs.append)
    assert not any(r.timings["features_cached"] for r in first)
    assert all(line.endswith("extracted") for line in logs)
    stamps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*.json"))

    logs.clear()
    again = bench.run(_config(tmp_path, small_suite), log=logs.append)
    assert all(line.endswith("reused record") for line in logs)
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*.json")) == stamps
    assert again == first

    logs.clear()
    refit = bench.run(_config(tmp_path, small_suite, overwrite=True), log=logs.append)
    assert all(line.endswith("cached features") for line in logs)
    assert all(r.timings["features_cached"] for r in refit)
    assert _scores(refit) == _scores(first)


def test_the_record_says_where_each_stage_ran_and_names_its_code(small_suite, tmp_path):
    config = _config(
        tmp_path, small_suite, models=["pixels"], tasks=["synth-view"], seeds=1, fractions=(1.0,)
    )
    config.device = "cpu"
    [record] = bench.run(config, log=lambda _: None)
    extraction = record.stages["extraction"]
    assert extraction["device"] == "cpu" and extraction["precision"] == "fp32"
    assert extraction["compile"] is False and extraction["channels_last"] is False
    assert record.stages["probe"] == {"device": "cpu"}
    assert record.code_sha256 and len(record.code_sha256) == 64
    # a record written before these fields reads, the fields as None
    old = record.to_dict()
    del old["stages"], old["code_sha256"]
    legacy = ResultRecord.from_dict(old)
    assert legacy.stages is None and legacy.code_sha256 is None


def test_a_damaged_cached_feature_file_is_recomputed_with_one_warning(
    small_suite, tmp_path, capsys
):
    config = _config(
        tmp_path, small_suite, models=["pixels"], tasks=["synth-view"], seeds=2, fractions=(1.0,)
    )
    clean = bench.run(config, log=lambda _: None)
    [tensors] = (tmp_path / "cache" / "features").glob(
        "pixels-*/synth-view/train/clean.safetensors"
    )
    data = bytearray(tensors.read_bytes())
    middle = len(data) // 2
    data[middle - 2048 : middle + 2048] = b"\xff" * 4096  # size and header intact
    tensors.write_bytes(bytes(data))
    capsys.readouterr()
    config.overwrite = True
    again = bench.run(config, log=lambda _: None)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "checksum" in warnings[0]
    assert not again[0].timings["features_cached"]  # the train split was recomputed
    assert _scores(again) == _scores(clean)


def test_changed_labels_invalidate_the_record(small_suite, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_suite / "synth_view_v1", data / "synth_view_v1")
    config = _config(
        tmp_path, data, tasks=["synth-view"], models=["pixels"], seeds=1, fractions=(1.0,)
    )
    first = bench.run(config, log=lambda _: None)
    test_json = data / "synth_view_v1" / "test.json"
    records = json.loads(test_json.read_text())
    records[0]["label"] = (records[0]["label"] + 1) % 4
    test_json.write_text(json.dumps(records))
    logs = []
    second = bench.run(config, log=logs.append)
    assert logs[0].endswith("cached features")  # same images, new labels: refit, no forward
    assert second[0].inputs_sha256 != first[0].inputs_sha256


def test_batch_size_does_not_change_results(small_suite, tmp_path):
    def run(batch_size, where):
        config = _config(
            where,
            small_suite,
            models=["random-vit-s"],
            tasks=["synth-texture"],
            batch_size=batch_size,
            seeds=2,
        )
        return _scores(bench.run(config, log=lambda _: None))

    assert run(1, tmp_path / "b1") == run(64, tmp_path / "b64")


def test_torch_probe_matches_scikit_learn_on_generated_features(small_suite, tmp_path):
    def run(backend):
        config = _config(
            tmp_path,
            small_suite,
            seeds=1,
            fractions=(1.0,),
            probe_options={"backend": backend},
            results_root=tmp_path / backend,
        )
        return {(r.model_name, r.task_name): r for r in bench.run(config, log=print)}

    ours, reference = run("torch"), run("sklearn")
    for key, record in ours.items():
        ref = reference[key]
        assert record.hyperparameters_per_seed[0]["C"] == ref.hyperparameters_per_seed[0]["C"], key
        assert abs(record.scores.mean - ref.scores.mean) < 0.5, key


def test_pixels_do_not_solve_every_generated_task(tmp_path):
    """The default suite carries real but not trivial signal for a raw-pixel probe."""
    data = tmp_path / "data"
    write_suite(data, seed=0, workers=2)
    config = _config(tmp_path, data, models=["pixels"], seeds=1, fractions=(1.0,), image_size=128)
    means = {r.task_name: r.scores.mean for r in bench.run(config, log=lambda _: None)}
    chance = {"synth-lesion": 100 / 3, "synth-texture": 100 / 3, "synth-view": 25.0}
    assert all(means[t] > chance[t] + 5 for t in SYNTH), means
    assert min(means.values()) < 90, means


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"models": ["nope"]}, "unknown model 'nope'"),
        ({"tasks": ["nope"]}, "unknown task 'nope'"),
        ({"models": []}, "no model given"),
        ({"seeds": 0}, "--seeds must be at least 1"),
        ({"fractions": (0.0,)}, "label budget: fraction must be in"),
        ({"shots": (0,)}, "label budget: shots must be at least 1"),
        ({"probe": "us-jepa-2026", "probe_options": {"backend": "torch"}}, "does not take"),
        ({"models": ["pixels", "hog"], "weights": "w.pth"}, "--weights applies to one model"),
        ({"pooling": "cls"}, "has no pooling 'cls'"),
        ({"probe": "svm"}, "unknown probe 'svm'"),
    ],
)
def test_bad_configuration_is_a_user_error_and_writes_nothing(
    small_suite, tmp_path, overrides, message
):
    with pytest.raises(UserError, match=message):
        bench.run(_config(tmp_path, small_suite, **overrides), log=lambda _: None)
    assert not (tmp_path / "results").exists()


def test_missing_generated_tasks_are_written_on_demand(tmp_path):
    generate_missing_synth(["synth-view"], tmp_path, log=lambda _: None)
    assert (tmp_path / "synth_view_v1" / "train.json").is_file()


def test_fit_plan_shares_equal_fits():
    labels = np.repeat([0, 1, 2], 10)
    budgets = [Budget(fraction=1.0), Budget(fraction=0.5), Budget(shots=2)]
    seedless = bench.plan_fits(budgets, 3, labels, 3, uses_seed=False)
    # every seed at 100 % is one fit; the subsampled budgets differ by seed
    assert seedless.cells[0] == [0, 0, 0]
    assert len(set(seedless.cells[1])) == 3 and len(set(seedless.cells[2])) == 3
    assert len(seedless.subsets) == 7 and seedless.seeds == [0, 0, 1, 2, 0, 1, 2]
    assert [len(seedless.subsets[i]) for i in seedless.cells[2]] == [6, 6, 6]
    seeded = bench.plan_fits(budgets, 3, labels, 3, uses_seed=True)
    assert seeded.cells[0] == [0, 1, 2] and len(seeded.subsets) == 9
    per_seed = seedless.per_seed(1, [f"fit{i}" for i in range(7)])
    assert [(s.seed, s.train_size, s.result) for s in per_seed] == [
        (0, 15, "fit1"),
        (1, 15, "fit2"),
        (2, 15, "fit3"),
    ]
