"""The slice end to end: generated suite -> store -> features -> probe -> records."""

import json
from dataclasses import replace

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


def _record_lines(logs):
    """The log's line per record (the timing summary follows them)."""
    return [line for line in logs if " | " in line]


STAGES = ("store", "features", "probes", "records")


def _summary(logs):
    """The timing summary: {stage: its line}, after the record lines."""
    lines = [line for line in logs if " | " not in line]
    assert [line.split()[0] for line in lines] == list(STAGES), lines
    assert logs[-len(STAGES) :] == lines
    return {line.split()[0]: line for line in lines}


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
    assert all(line.endswith("extracted") for line in _record_lines(logs))
    stamps = sorted(p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*.json"))

    logs.clear()
    again = bench.run(_config(tmp_path, small_suite), log=logs.append)
    assert all(line.endswith("reused record") for line in _record_lines(logs))
    summary = _summary(logs)  # only this run's work: stores opened, nothing else
    assert " 0 fits " in summary["probes"] and "(0 written, 12 reused)" in summary["records"]
    assert "(0 extracted, 0 from the cache)" in summary["features"]
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "results").rglob("*.json")) == stamps
    assert again == first

    logs.clear()
    refit = bench.run(_config(tmp_path, small_suite, overwrite=True), log=logs.append)
    assert all(line.endswith("cached features") for line in _record_lines(logs))
    images = sum(sum(r.task.split_sizes.values()) for r in refit if r.protocol_id == "linear")
    assert f"(0 extracted, {images:,} from the cache)" in _summary(logs)["features"]
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
    # These tasks have fewer training images than hog has dimensions: at large C they are
    # nearly separable, where two solvers stopped at scikit-learn's default 1e-4 may sit at
    # points that predict differently; the default tolerance (1e-6) is tight enough.
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


def test_a_seedless_probe_at_all_labels_is_one_fit_and_says_so(small_suite, tmp_path):
    """linear ignores the seed: at 100 % every seed is the same problem, fitted once and
    recorded once; at 50 % each seed draws its own labels, five fits."""
    config = _config(
        tmp_path, small_suite, models=["pixels"], tasks=["synth-view"], seeds=5, probe="linear"
    )
    logs = []
    [full, half] = bench.run(config, log=logs.append)
    assert (full.protocol_id, half.protocol_id) == ("linear", "linear@50%")
    assert full.scores.fits == 1 and full.fit_count == 1 and full.seed_count == 5
    assert full.protocol.seeds == [0] and full.protocol.seeds_requested == 5
    for per_fit in (
        full.scores.per_seed,
        full.scores.val_per_seed,
        full.test.predictions_per_seed,
        full.hyperparameters_per_seed,
        full.train_size_per_seed,
    ):
        assert len(per_fit) == 1
    assert full.train_size_per_seed == [full.task.split_sizes["train"]]
    assert full.scores.std == 0.0 and full.scores.mean == pytest.approx(full.scores.per_seed[0])
    assert half.scores.fits == 5 and half.protocol.seeds == [0, 1, 2, 3, 4]
    assert half.seed_count == 5 and len(half.test.predictions_per_seed) == 5
    # one call made the six distinct fits for the ten (budget, seed) cells
    assert full.timings["probe_fits"] == half.timings["probe_fits"] == 6
    assert full.timings["probe_problems"] == 10
    # the log shows the one fit as such, never as a spread of 0
    [full_line, half_line] = _record_lines(logs)
    assert f" {full.scores.mean:.1f} (1 fit) |" in full_line and "±" not in full_line
    assert f" {half.scores.mean:.1f} ± {half.scores.std:.1f} |" in half_line
    probes = _summary(logs)["probes"]
    assert probes.split()[3:5] == ["6", "fits"] and "(10 budget x seed cells)" in probes
    assert read_records(tmp_path / "results") == [full, half]


def test_fitting_once_equals_fitting_per_seed(small_suite, tmp_path, monkeypatch):
    """The shared fit is what each seed's own fit would be: made once per seed (the plan told
    that every seed uses its seed), every seed's predictions equal the one shared fit's."""
    config = _config(
        tmp_path, small_suite, models=["hog"], tasks=["synth-lesion"], seeds=3, fractions=(1.0,)
    )
    [once] = bench.run(config, log=lambda _: None)
    plan = bench.plan_fits
    monkeypatch.setattr(bench, "plan_fits", lambda *args, **kw: plan(*args[:4], uses_seed=True))
    [per_seed] = bench.run(replace(config, results_root=tmp_path / "per-seed"), log=lambda _: None)
    assert once.fit_count == 1 and per_seed.fit_count == 3
    for predictions in per_seed.test.predictions_per_seed:
        assert predictions == once.test.predictions_per_seed[0]
    assert per_seed.scores.per_seed == once.scores.per_seed * 3
    assert per_seed.scores.mean == once.scores.mean
    # the same choice of C, on the same validation scores (the solver's own diagnostics,
    # iterations and last bits of the objective, may differ with what shares its batch)
    for params in per_seed.hyperparameters_per_seed:
        for key in ("C", "val_macro_f1_per_C", "converged"):
            assert params[key] == once.hyperparameters_per_seed[0][key], key


def test_a_seeded_probe_keeps_a_fit_per_seed(small_suite, tmp_path):
    config = _config(
        tmp_path,
        small_suite,
        models=["pixels"],
        tasks=["synth-view"],
        seeds=3,
        probe="us-jepa-2026",
        probe_options={"max_epochs": 2},
        fractions=(1.0,),
    )
    [record] = bench.run(config, log=lambda _: None)
    assert record.scores.fits == 3 and record.protocol.seeds == [0, 1, 2]
    assert len(record.scores.per_seed) == len(record.test.predictions_per_seed) == 3
    assert record.timings["probe_fits"] == record.timings["probe_problems"] == 3


def test_each_stage_is_timed_in_the_records_and_summed_in_the_log(
    small_suite, tmp_path, monkeypatch
):
    """What each stage took goes into every record's `timings` and, summed over models x
    tasks, into one summary line per stage; a store built in this run adds its build steps."""
    stats = {
        "images": 20,
        "seconds": 0.5,
        "images_per_s": 40.0,
        "workers": 2,
        "decode_s": 0.1,
        "resize_s": 0.2,
        "mask_s": 0.15,
        "write_s": 0.05,
    }
    opened = bench.open_task_stores

    def built_here(*args, **kwargs):  # as a store built in this run reports itself
        stores = opened(*args, **kwargs)
        for name, store in stores.items():
            object.__setattr__(store, "build_stats", dict(stats) if name == "train" else None)
        return stores

    monkeypatch.setattr(bench, "open_task_stores", built_here)
    config = _config(tmp_path, small_suite, seeds=2, fractions=(1.0,))
    logs = []
    records = bench.run(config, log=logs.append)
    for record in records:
        timings = record.timings
        sizes = record.task.split_sizes
        assert timings["store_images"] == sum(sizes.values())
        assert timings["store_build"] == {"train": stats}
        assert timings["features_images"] == sizes
        assert timings["features_from_cache"] == dict.fromkeys(sizes, False)
        assert set(timings["features_s"]) == set(sizes)
        assert timings["probe_fits"] == 1 and timings["probe_problems"] == 2
        for key in ("load_s", "store_s", "probe_s", "probe_total_s", "record_s"):
            assert isinstance(timings[key], float) and timings[key] >= 0, key
    summary = _summary(logs)
    images = sum(r.timings["store_images"] for r in records)
    assert summary["store"].split()[3:5] == [f"{images:,}", "images"]
    # six tasks' train stores (2 models x 3 tasks)
    assert summary["store"].endswith(
        "(built 120 images in 3.00 s, 2 workers: decode 0.60 s, resize 1.20 s, mask 0.90 s, "
        "write 0.30 s)"
    )
    assert "images/s" in summary["store"]
    assert f"({images:,} extracted, 0 from the cache)" in summary["features"]
    assert "(12 budget x seed cells)" in summary["probes"] and " 6 fits " in summary["probes"]
    assert summary["records"].split()[3:5] == ["6", "records"]
    assert "(6 written, 0 reused)" in summary["records"]


def test_the_summary_lines_read_the_same_whatever_the_numbers():
    times = bench.RunTimes(store_s=0.4, store_images=2700, features_s=231.0, features_images=2700)
    times.features_cached_images = 700
    times.probe_s, times.fits, times.problems = 470.5, 189, 225
    times.records_s, times.records, times.written = 2.0, 45, 40
    assert times.summary() == [
        "store         0.40 s     2,700 images    6,750.0 images/s   (opened, none built)",
        "features    231.00 s     2,700 images       11.7 images/s   "
        "(2,000 extracted, 700 from the cache)",
        "probes      470.50 s       189 fits            0.4 fits/s   (225 budget x seed cells)",
        "records       2.00 s        45 records     22.5 records/s   (40 written, 5 reused)",
    ]
    nothing = bench.RunTimes().summary()
    assert [line.split()[:4] for line in nothing] == [
        ["store", "0.00", "s", "0"],
        ["features", "0.00", "s", "0"],
        ["probes", "0.00", "s", "0"],
        ["records", "0.00", "s", "0"],
    ]
    assert all("– " in line for line in nothing)  # no rate without time
    # nor for a stage too short to time (a store opened, features read from the cache)
    instant = bench.RunTimes(store_s=0.001, store_images=60, features_s=0.002, features_images=60)
    assert all("– images/s" in line for line in instant.summary()[:2])


def test_a_probe_on_patch_tokens_reads_the_token_cache(small_suite, tmp_path):
    config = _config(
        tmp_path,
        small_suite,
        models=["pixels"],
        tasks=["synth-lesion"],
        probe="attentive",
        probe_options={"max_epochs": 2, "lrs": [1e-3]},
        seeds=2,
        fractions=(1.0,),
        device="cpu",
    )
    (record,) = bench.run(config, log=lambda _: None)
    assert record.protocol.probe == "attentive" and record.model.pooling == "tokens"
    assert len(record.scores.per_seed) == 2 and record.has_predictions
    assert list((tmp_path / "cache" / "tokens").rglob("clean.float16.npy"))
    assert not (tmp_path / "cache" / "features").exists()  # no pooled vector was needed
