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


def _damaged(tmp_path, capsys, damage):
    """Save, damage the tensor file in place (size unchanged), load: a miss with one warning."""
    key = CacheKey("m", "f" * 16, "toy", "train", "clean")
    rng = np.random.default_rng(0)
    feats = {"cls": rng.normal(size=(200, 64)).astype(np.float32)}
    ids = [f"{i}.png" for i in range(200)]
    feature_cache.save(key, tmp_path, feats, ids, "hash1")
    tensors, _ = key.paths(tmp_path)
    data = bytearray(tensors.read_bytes())
    damage(data)
    tensors.write_bytes(bytes(data))
    capsys.readouterr()
    assert feature_cache.load(key, tmp_path, ids, "hash1") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum" in err[0] and str(tensors) in err[0]


def test_a_block_overwritten_in_the_middle_is_a_miss_with_one_warning(tmp_path, capsys):
    def overwrite(data):
        middle = len(data) // 2
        data[middle - 2048 : middle + 2048] = bytes(4096)

    _damaged(tmp_path, capsys, overwrite)


def test_one_flipped_bit_is_a_miss_with_one_warning(tmp_path, capsys):
    def flip(data):
        data[len(data) - 100] ^= 0x01

    _damaged(tmp_path, capsys, flip)


def test_another_view_code_is_a_miss(tmp_path):
    key = CacheKey("m", "f" * 16, "toy", "test", "speckle-s3-seed0-abcd", view_code="one")
    feats = {"cls": np.ones((2, 3), np.float32)}
    feature_cache.save(key, tmp_path, feats, ["a", "b"], "h")
    assert feature_cache.load(key, tmp_path, ["a", "b"], "h") is not None
    changed = CacheKey("m", "f" * 16, "toy", "test", "speckle-s3-seed0-abcd", view_code="two")
    assert feature_cache.load(changed, tmp_path, ["a", "b"], "h") is None
