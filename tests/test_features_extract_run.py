"""`ubench extract`: a segmentation task's patch tokens go into the token cache."""

from ultrabench_eval.data.synth import write_task
from ultrabench_eval.features.extract_run import ExtractConfig, run_extraction


def test_a_segmentation_task_gets_its_patch_tokens(tmp_path):
    write_task("synth-lesion-seg", tmp_path / "data", num_images=12, image_size=32)
    config = ExtractConfig(
        models=["pixels"],
        tasks=["synth-lesion-seg"],
        data_root=tmp_path / "data",
        cache_root=tmp_path / "cache",
        progress=False,
    )
    lines: list[str] = []
    rows = run_extraction(config, log=lines.append)
    assert [row["split"] for row in rows] == ["train", "validation", "test"]
    assert all(row["dims"] == {"tokens": [64, 16]} and not row["cached"] for row in rows)
    assert any(line.startswith("tokens pixels synth-lesion-seg/train:") for line in lines)
    assert list((tmp_path / "cache" / "tokens").rglob("clean.float16.npy"))
    again = run_extraction(config, log=lines.append)
    assert all(row["cached"] for row in again)
