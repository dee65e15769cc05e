"""Segmentation tasks through the bench and the robustness protocol: the dense probe on patch
tokens, records with Dice, mIoU and per-image counts, the leaderboard's Dice/mIoU table."""

import numpy as np
import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.data.synth import write_task
from ultrabench_eval.models.adapter import Adapter
from ultrabench_eval.probes.dense import DenseProbe
from ultrabench_eval.protocols import bench, robust
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.report import leaderboard
from ultrabench_eval.results.overlays import overlay_path, read_overlay
from ultrabench_eval.results.record import ResultRecord, read_records

TASK = "synth-lesion-seg"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    write_task(TASK, root / "data", num_images=24, image_size=64)
    return root


def _config(root, **overrides):
    values = {
        "models": ["pixels"],
        "tasks": [TASK],
        "data_root": root / "data",
        "cache_root": root / "cache",
        "results_root": root / "results",
        "seeds": 2,
        "probe": "dense",
        "probe_options": {"epochs": 2},
        "fractions": (1.0, 0.5),
        "progress": False,
        "device": "cpu",
    }
    values.update(overrides)
    return BenchConfig(**values)


def test_a_segmentation_task_gives_dice_and_miou_records(data, tmp_path):
    lines = []
    config = _config(data, results_root=tmp_path / "results")
    records = bench.run(config, log=lines.append)
    assert [r.protocol_id for r in records] == ["dense+epochs=2", "dense+epochs=2@50%"]
    record = records[0]
    assert record.is_segmentation and record.scores.metric == "dice"
    assert record.model.pooling == "tokens" and record.task.classes[0] == "background"
    miou = record.secondary_score("miou")
    assert miou is not None and len(miou["per_seed"]) == 2
    assert set(record.scores.secondary["dice_per_class"]) <= {"cyst", "solid"}
    counts = np.asarray(record.test.counts_per_seed)
    assert counts.shape == (2, record.task.split_sizes["test"], 3, 3)
    # the headline is the Dice of the summed counts, as the probe scored it
    tp, fp, fn = counts[0].sum(axis=0).T
    dice = np.array([2 * t / (2 * t + p + n) for t, p, n in zip(tp, fp, fn, strict=True)])
    assert record.scores.per_seed[0] == pytest.approx(100 * np.nanmean(dice[1:]), abs=1e-4)
    assert record.scores.ci95[0] <= record.scores.mean <= record.scores.ci95[1]
    assert any("Dice" in line for line in lines)
    # the file reads back equal; a second run reuses every record
    assert read_records(config.results_root)[0] in records
    again = bench.run(config, log=lines.append)
    assert [r.created for r in again] == [r.created for r in records]
    text = leaderboard.render_markdown(records)
    assert f"{TASK} Dice" in text and f"{TASK} mIoU" in text
    # beside each record, a few test images with true and predicted masks for the report
    overlay = read_overlay(overlay_path(config.results_root, "pixels", TASK, record.protocol_id))
    assert overlay is not None and overlay.classes == list(record.task.classes)
    assert overlay.images.shape == overlay.truth.shape == overlay.prediction.shape
    assert overlay.images.shape[1:] == (64, 64) and (overlay.truth > 0).any()


def test_the_dense_probe_cannot_score_classification_tasks(data):
    config = _config(data, tasks=[TASK, "synth-lesion"])
    with pytest.raises(UserError, match="--probe dense segments, but synth-lesion"):
        bench.check(config)


def test_a_model_without_tokens_is_refused_before_any_work(data, monkeypatch):
    monkeypatch.setattr(Adapter, "gives_tokens", property(lambda self: False))
    with pytest.raises(UserError, match="gives no patch tokens, which task"):
        bench.check(_config(data))


def test_corruptions_change_the_images_never_the_masks(data, tmp_path, monkeypatch):
    scored = []
    original = DenseProbe.score

    def spy(self, index, tokens, masks, valid, grid):
        scored.append((np.array(tokens), np.array(masks), np.array(valid)))
        return original(self, index, tokens, masks, valid, grid)

    monkeypatch.setattr(DenseProbe, "score", spy)
    config = robust.RobustConfig(
        _config(data, results_root=tmp_path / "results", fractions=(1.0,)),
        [("speckle", 3), ("shadow", 4)],
        reference=None,
    )
    records = robust.run(config, log=lambda _: None)
    assert [r.view for r in records] == ["clean", records[1].view, records[2].view]
    assert all(r.is_segmentation for r in records)
    (tokens_a, masks_a, valid_a), (tokens_b, masks_b, valid_b) = scored
    assert not np.array_equal(tokens_a, tokens_b)  # the images were corrupted
    np.testing.assert_array_equal(masks_a, masks_b)  # the masks were not
    np.testing.assert_array_equal(valid_a, valid_b)
    # every view is scored against the same masks: the same pixel total per class
    totals = [np.asarray(r.test.counts_per_seed)[0] for r in records]
    for counts in totals:
        tp, _, fn = counts.sum(axis=0).T
        np.testing.assert_array_equal(
            tp + fn, totals[0].sum(axis=0).T[0] + totals[0].sum(axis=0).T[2]
        )


def test_segmentation_records_round_trip(data, tmp_path):
    record = bench.run(_config(data, results_root=tmp_path / "r", fractions=(1.0,)))[0]
    again = ResultRecord.from_dict(record.to_dict())
    assert again == record and again.has_counts and not again.has_predictions


def test_a_class_missing_from_train_or_a_split_without_foreground_is_refused():
    from types import SimpleNamespace

    from ultrabench_eval.protocols.segmentation import _check_foreground

    def stores(train, validation, test):
        classes = ["background", "cyst", "solid"]
        return {
            name: SimpleNamespace(meta={"classes": classes, "pixels_per_class": pixels})
            for name, pixels in (("train", train), ("validation", validation), ("test", test))
        }

    _check_foreground("t", stores([9, 1, 1], [9, 0, 1], [9, 1, 1]))  # validation may lack one
    with pytest.raises(UserError, match="train split's label masks have no pixel of class.*solid"):
        _check_foreground("t", stores([9, 1, 0], [9, 1, 1], [9, 1, 1]))
    with pytest.raises(UserError, match="validation split's label masks have no foreground"):
        _check_foreground("t", stores([9, 1, 1], [9, 0, 0], [9, 1, 1]))
