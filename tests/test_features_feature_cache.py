import numpy as np

from ultrabench_eval.features import feature_cache
from ultrabench_eval.features.feature_cache import CacheKey


def _setup(tmp_path):
    key = CacheKey("timm:vit_tiny", "abc123", "toy", "train", "clean")
    feats = {
        "cls": np.arange(12, dtype=np.float32).reshape(3, 4),
        "mean": np.ones((3, 4), np.float32),
    }
    ids = ["a.png", "b.png", "c.png"]
    feature_cache.save(key, tmp_path, feats, ids, "hash1")
    return key, feats, ids


def test_round_trip_and_layout(tmp_path):
    key, feats, ids = _setup(tmp_path)
    tensors, _ = key.paths(tmp_path)
    assert tensors.parent.name == "train" and "timm_vit_tiny-abc123" in str(tensors)
    loaded = feature_cache.load(key, tmp_path, ids, "hash1")
    np.testing.assert_array_equal(loaded["cls"], feats["cls"])
    assert not list(tensors.parent.glob(".*tmp")), "no temporary files left behind"


def test_mismatch_is_a_miss(tmp_path):
    key, _, ids = _setup(tmp_path)
    assert feature_cache.load(key, tmp_path, ids[::-1], "hash1") is None  # reordered
    assert feature_cache.load(key, tmp_path, ids[:2], "hash1") is None  # removed
    assert feature_cache.load(key, tmp_path, ids, "hash2") is None  # pixels changed
    other = CacheKey("timm:vit_tiny", "abc123", "toy", "test", "clean")
    assert feature_cache.load(other, tmp_path, ids, "hash1") is None


def test_truncated_file_is_a_miss(tmp_path):
    key, _, ids = _setup(tmp_path)
    tensors, _ = key.paths(tmp_path)
    tensors.write_bytes(tensors.read_bytes()[:40])
    assert feature_cache.load(key, tmp_path, ids, "hash1") is None
