"""`make perf` for patch tokens: the figures are written for both models, on a tiny case."""

import json

import torch

from benchmarks import perf_tokens


def test_writes_throughput_and_size_figures_for_both_models(tmp_path):
    threads = torch.get_num_threads()
    try:
        code = perf_tokens.main(
            [
                *("--out", str(tmp_path), "--device", "cpu", "--threads", "1"),
                *("--images", "12", "--batch-size", "3", "--write-images", "7"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    figures = json.loads((tmp_path / "tokens-cpu.json").read_text())
    models = figures["models"]
    assert set(models) == {"random-vit-s", "pixels"}
    vit, pixels = models["random-vit-s"], models["pixels"]
    assert (vit["grid"], vit["token_dim"], vit["bytes_per_image"]) == ([14, 14], 384, 196 * 384 * 2)
    assert (pixels["grid"], pixels["token_dim"]) == ([8, 8], 16)
    for row in models.values():
        assert row["images"] == 4  # the train split of 12 generated images
        assert row["cold_images_per_s"] > 0 and row["tokens_only_images_per_s"] > 0
        assert row["mb_written"] >= row["images"] * row["bytes_per_image"] / 1e6
        assert row["warm_from_cache"] is True
        assert row["size_line"].startswith(f"tokens {'random-vit-s' if row is vit else 'pixels'} ")
    write = figures["cache_write_vit_b16_rows"]
    assert write["images"] == 7 and write["mb"] == round(7 * 301056 / 1e6, 1)
    assert write["mb_per_s"] > 0
    table = figures["cache_size_vit_b16_224px"]
    assert table["bytes_per_image"] == 196 * 768 * 2
    busbra = table["tasks"]["busbra"]
    assert busbra["images"] == 765 + 86 + 213
    assert figures["cpu_threads"] == 1
    assert busbra["splits"]["train"] == {"images": 765, "mb": round(765 * 301056 / 1e6, 1)}
    assert table["all_tasks_bytes"] == sum(t["total_bytes"] for t in table["tasks"].values())
