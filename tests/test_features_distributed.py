"""torchrun with 2 CPU ranks (gloo) gives the same features as one process."""

import json
import os
import subprocess
import sys

import numpy as np
from conftest import make_dataset
from safetensors.numpy import load_file


def _features(cache_root):
    (path,) = cache_root.glob("features/hog-*/toy/train/clean.safetensors")
    return load_file(str(path))["hog"]


def test_two_ranks_equal_one(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 13, "validation": 3, "test": 3})
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "toy.yaml").write_text(f"name: toy\ndataset: {card.dataset}\nclasses: [a, b]\n")
    env = {**os.environ, "UBENCH_TASKS": str(cards), "OMP_NUM_THREADS": "1"}
    command = [
        "-m",
        "ultrabench_eval",
        "extract",
        "--model",
        "hog",
        "--tasks",
        "toy",
        "--data",
        str(tmp_path / "data"),
        "--splits",
        "train",
        "--batch-size",
        "4",
        "--no-progress",
    ]
    one = subprocess.run(
        [sys.executable, *command, "--cache", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            *command,
            "--cache",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr
    np.testing.assert_allclose(
        _features(tmp_path / "two"), _features(tmp_path / "one"), rtol=1e-6, atol=1e-7
    )
    (sidecar,) = (tmp_path / "two").glob("features/hog-*/toy/train/clean.json")
    assert json.loads(sidecar.read_text())["merged_shards"] == 2
    leftovers = [p.name for p in sidecar.parent.iterdir() if "shard" in p.name]
    assert leftovers == [], "shard files are removed after the merge"
    # the image store was decoded once, by rank 0
    assert len(list((tmp_path / "two").glob("images/*/*/meta.json"))) == 1
