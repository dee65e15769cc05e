"""The token cache's storage: keys, the partial file and its resumption, checksums, locking,
free space."""

import hashlib
import json
import threading
import time

import numpy as np
import pytest

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.features import token_cache
from ultrabench_eval.features.feature_cache import CacheKey
from ultrabench_eval.features.token_cache import TokenKey, TokenWriter

IDS = [f"{i:02d}.png" for i in range(10)]
SHAPE = (10, 4, 3)
GRID = (2, 2)
CODE = "code-digest"


def _key(**changes) -> TokenKey:
    fields = {"model": "m", "fingerprint": "f" * 16, "task": "t", "split": "train"}
    return TokenKey(**{**fields, **changes})


def _rows(seed: int = 0, dtype: str = "float16") -> np.ndarray:
    return np.random.default_rng(seed).normal(size=SHAPE).astype(dtype)


def _write(key: TokenKey, root, rows: np.ndarray, *, step: int = 3) -> None:
    writer = TokenWriter.open(key, root, IDS, "content", CODE, SHAPE, GRID)
    for start in range(writer.done, len(rows), step):
        writer.write(rows[start : start + step])
    writer.finish({"device": "cpu"})


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    """Each test starts as a new process would: no file's checksum verified yet."""
    monkeypatch.setattr(token_cache, "_VERIFIED", {})
    monkeypatch.setattr(token_cache, "_DAMAGED", {})


def test_key_follows_the_feature_key_and_adds_the_dtype(tmp_path):
    features = CacheKey("timm:vit", "a" * 16, "busbra", "test", "speckle-s3-seed0-1234", "code")
    key = TokenKey.of(features, "float32")
    assert (key.model, key.fingerprint, key.view_code, key.dtype) == (
        "timm:vit",
        "a" * 16,
        "code",
        "float32",
    )
    data, sidecar = key.paths(tmp_path)
    assert data == tmp_path / "tokens" / f"timm_vit-{'a' * 16}" / "busbra" / "test" / (
        "speckle-s3-seed0-1234.float32.npy"
    )
    assert sidecar.name == "speckle-s3-seed0-1234.float32.json"
    assert key.paths(tmp_path, "partial")[0].name == "speckle-s3-seed0-1234.float32.partial.npy"
    assert TokenKey.of(features, "float16").paths(tmp_path)[0] != data


def test_written_file_reads_back_as_a_read_only_map(tmp_path):
    rows = _rows()
    _write(_key(), tmp_path, rows)
    tokens, sidecar = token_cache.load(_key(), tmp_path, IDS, "content", CODE)
    assert isinstance(tokens, np.memmap) and not tokens.flags.writeable
    np.testing.assert_array_equal(tokens, rows)
    assert tokens.dtype == np.float16
    assert sidecar["grid"] == [2, 2] and sidecar["shape"] == list(SHAPE)
    assert sidecar["device"] == "cpu" and sidecar["done"] == 10
    names = sorted(p.name for p in _key().folder(tmp_path).iterdir())
    assert names == ["clean.float16.json", "clean.float16.npy"]


@pytest.mark.parametrize(
    "change",
    [
        {"ids": IDS[::-1]},
        {"content_hash": "other content"},
        {"code": "other code"},
        {"key": _key(view_code="other corruption code")},
        {"key": _key(fingerprint="0" * 16)},
        {"key": _key(dtype="float32")},
    ],
)
def test_a_file_of_other_images_code_or_model_is_not_used(tmp_path, change):
    _write(_key(), tmp_path, _rows())
    args = {"key": _key(), "ids": IDS, "content_hash": "content", "code": CODE, **change}
    found = token_cache.load(args["key"], tmp_path, args["ids"], args["content_hash"], args["code"])
    assert found is None


def test_a_data_file_without_its_sidecar_is_not_trusted(tmp_path):
    _write(_key(), tmp_path, _rows())
    data, sidecar = _key().paths(tmp_path)
    sidecar.unlink()
    assert data.exists() and token_cache.load(_key(), tmp_path, IDS, "content", CODE) is None


def test_a_truncated_file_is_recomputed_not_a_crash(tmp_path):
    _write(_key(), tmp_path, _rows())
    data, _ = _key().paths(tmp_path)
    data.write_bytes(data.read_bytes()[:-10])
    assert token_cache.load(_key(), tmp_path, IDS, "content", CODE) is None


def test_damaged_bytes_are_caught_by_the_checksum_with_one_warning(tmp_path, capsys):
    _write(_key(), tmp_path, _rows())
    data, _ = _key().paths(tmp_path)
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0xFF
    data.write_bytes(bytes(raw))
    token_cache._VERIFIED.clear()
    assert token_cache.load(_key(), tmp_path, IDS, "content", CODE) is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "do not match their checksum" in lines[0] and str(data) in lines[0]


def test_checksum_is_verified_once_per_process_and_file(tmp_path, monkeypatch):
    hashed = []
    real = token_cache.data_sha256
    monkeypatch.setattr(
        token_cache, "data_sha256", lambda *args: hashed.append(args[0]) or real(*args)
    )
    _write(_key(), tmp_path, _rows())
    token_cache.load(_key(), tmp_path, IDS, "content", CODE)
    assert hashed == [], "a file this process wrote was hashed as it was written"
    token_cache._VERIFIED.clear()  # as in another process
    for _ in range(3):
        assert token_cache.load(_key(), tmp_path, IDS, "content", CODE) is not None
    assert len(hashed) == 1


def test_the_stored_checksum_is_the_sha256_of_the_array_bytes(tmp_path):
    rows = _rows()
    _write(_key(), tmp_path, rows, step=4)
    _, sidecar = _key().paths(tmp_path)
    assert json.loads(sidecar.read_text())["data_sha256"] == hashlib.sha256(rows.data).hexdigest()


def test_partial_file_is_pre_sized_and_resumes_from_its_checkpoint(tmp_path):
    rows = _rows(3)
    writer = TokenWriter.open(_key(), tmp_path, IDS, "content", CODE, SHAPE, GRID)
    data, sidecar = _key().paths(tmp_path, "partial")
    assert data.stat().st_size >= rows.nbytes, "the whole file is reserved up front"
    writer.write(rows[:4])
    writer.checkpoint()
    writer.write(rows[4:6])  # not checkpointed: lost with the process
    del writer
    assert json.loads(sidecar.read_text())["done"] == 4
    assert token_cache.partial_rows(_key(), tmp_path, IDS, "content", CODE, SHAPE, GRID) == 4
    again = TokenWriter.open(_key(), tmp_path, IDS, "content", CODE, SHAPE, GRID)
    assert again.done == again.resumed == 4
    again.write(rows[4:])
    again.finish()
    assert not data.exists() and not sidecar.exists()
    resumed_path, _ = _key().paths(tmp_path)
    resumed = resumed_path.read_bytes()
    _write(_key(), tmp_path / "other", rows)
    assert resumed == _key().paths(tmp_path / "other")[0].read_bytes()
    token_cache._VERIFIED.clear()
    assert token_cache.load(_key(), tmp_path, IDS, "content", CODE) is not None


def test_a_partial_file_of_another_shape_or_with_damaged_rows_starts_again(tmp_path, capsys):
    rows = _rows()
    writer = TokenWriter.open(_key(), tmp_path, IDS, "content", CODE, SHAPE, GRID)
    writer.write(rows[:5])
    writer.checkpoint()
    del writer
    other = TokenWriter.open(_key(), tmp_path, IDS, "content", CODE, (10, 4, 5), GRID)
    assert other.done == 0 and other.array.shape == (10, 4, 5)
    other.write(np.zeros((5, 4, 5), np.float16))
    other.checkpoint()
    del other
    data, _ = _key().paths(tmp_path, "partial")
    raw = bytearray(data.read_bytes())
    raw[-(5 * 4 * 5 * 2) - 1] ^= 0xFF  # inside the rows done
    data.write_bytes(bytes(raw))
    again = TokenWriter.open(_key(), tmp_path, IDS, "content", CODE, (10, 4, 5), GRID)
    assert again.done == 0
    assert "starting again" in capsys.readouterr().err


def test_not_enough_free_space_is_one_line_and_creates_nothing(tmp_path, monkeypatch):
    usage = type("Usage", (), {"free": 100 << 20, "total": 1 << 40, "used": 0})
    monkeypatch.setattr(token_cache.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(UserError) as raised:
        token_cache.check_free_space(_key(), tmp_path / "cache", 1 << 30, 1 << 30)
    message = str(raised.value)
    assert "\n" not in message
    for part in ("1.1 GB", "104.9 MB are free", str(_key().folder(tmp_path / "cache")), "--cache"):
        assert part in message
    assert "ubench cache rm" in message
    assert not (tmp_path / "cache").exists()
    token_cache.check_free_space(_key(), tmp_path / "cache", 0, 1 << 30)  # space already held


def test_one_process_at_a_time_fills_an_entry(tmp_path):
    said = []
    entered = threading.Event()
    order = []

    def second() -> None:
        with token_cache.entry_lock(_key(), tmp_path, said.append):
            order.append("second")
            entered.set()

    with token_cache.entry_lock(_key(), tmp_path, said.append):
        thread = threading.Thread(target=second)
        thread.start()
        for _ in range(1000):  # until the other one says it waits for the lock
            if said:
                break
            time.sleep(0.01)
        assert said and not entered.is_set()
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"]
    assert len(said) == 1 and said[0].startswith("waiting for another process")


def test_human_bytes():
    assert token_cache.human_bytes(512) == "512 B"
    assert token_cache.human_bytes(485_300_000) == "485.3 MB"
    assert token_cache.human_bytes(20_480) == "20.5 kB"
    assert token_cache.human_bytes(3.2e12) == "3.2 TB"


def test_only_float16_and_float32_are_storage_dtypes():
    assert token_cache.storage_dtype("float16") == np.float16
    with pytest.raises(UserError, match="float16, float32"):
        token_cache.storage_dtype("bfloat16")
