"""Patch-token extraction into the token cache: values, keys, resumption, views, errors."""

import json
import multiprocessing

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.corruptions.views import View
from ultrabench_eval.data.dataset import open_dataset
from ultrabench_eval.data.image_store import open_store
from ultrabench_eval.features import extract_tokens, token_cache
from ultrabench_eval.features.extract_tokens import cached_tokens, token_key
from ultrabench_eval.models.adapter import Adapter, InputSpec, ModelInfo, PatchTokens, map_tokens

TRAIN = 10


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch):
    """Each test starts as a new process would: no file's checksum verified yet."""
    monkeypatch.setattr(token_cache, "_VERIFIED", {})
    monkeypatch.setattr(token_cache, "_DAMAGED", {})


def _store(data, cache, card=None):
    card = card or make_dataset(data, counts={"train": TRAIN, "validation": 2, "test": 2})
    split = open_dataset(card, data).splits["train"]
    return open_store(split, card.dataset, 32, cache, progress=False)


@pytest.fixture
def store(tmp_path):
    return _store(tmp_path / "data", tmp_path / "cache")


def _pixels() -> Adapter:
    """The registered weight-free `pixels` model (imported here: the processes the two-writer
    test spawns import this module, and need no model zoo)."""
    from model_zoo.classical import PixelsAdapter

    return PixelsAdapter().load()


def _counted(adapter: Adapter, dies_after: int | None = None, inspect=None) -> list[int]:
    """Count `embed_tokens` calls (an instance attribute: the fingerprint stays the class's);
    after `dies_after` calls the next one raises KeyboardInterrupt, as Ctrl-C would."""
    calls = [0]
    real = adapter.embed_tokens

    def embed_tokens(images):
        if calls[0] == dies_after:
            if inspect is not None:
                inspect()
            raise KeyboardInterrupt
        calls[0] += 1
        return real(images)

    adapter.embed_tokens = embed_tokens
    return calls


def _pixel_tokens(images: np.ndarray) -> np.ndarray:
    """What `pixels` gives for 32x32 images: 4x4 patches, row-major on an 8x8 grid."""
    x = images.astype(np.float32) / 255.0
    n = x.shape[0]
    return x.reshape(n, 8, 4, 8, 4).transpose(0, 1, 3, 2, 4).reshape(n, 64, 16)


def test_tokens_are_the_models_in_store_order_as_a_read_only_float16_map(store, tmp_path):
    lines = []
    result = cached_tokens(
        _pixels(),
        "toy",
        "train",
        store,
        tmp_path / "cache",
        batch_size=3,
        log=lines.append,
    )
    assert isinstance(result.tokens, np.memmap) and not result.tokens.flags.writeable
    assert result.tokens.dtype == np.float16 and result.tokens.shape == (TRAIN, 64, 16)
    assert result.grid == (8, 8) and not result.from_cache and result.device == "cpu"
    assert result.nbytes == TRAIN * 64 * 16 * 2
    expected = _pixel_tokens(np.asarray(store.images)).astype(np.float16)
    np.testing.assert_array_equal(result.tokens, expected)
    assert lines == ["tokens pixels toy/train: 10 x 64 x 16 float16 = 20.5 kB"]


def test_size_line_goes_to_stderr_without_a_log(store, tmp_path, capsys):
    cached_tokens(_pixels(), "toy", "train", store, tmp_path / "cache")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tokens pixels toy/train: 10 x 64 x 16 float16 = 20.5 kB"]


def test_warm_cache_runs_no_forward_pass_and_says_nothing(store, tmp_path):
    adapter = _pixels()
    calls = _counted(adapter)
    cold = cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", batch_size=4)
    assert calls[0] == 3
    lines = []
    warm = cached_tokens(
        adapter, "toy", "train", store, tmp_path / "cache", batch_size=4, log=lines.append
    )
    assert warm.from_cache and calls[0] == 3 and lines == []
    assert warm.grid == cold.grid and warm.device == "cpu"
    np.testing.assert_array_equal(warm.tokens, cold.tokens)


def test_tokens_do_not_depend_on_the_batch_size(tmp_path):
    card = make_dataset(tmp_path / "data", counts={"train": 4, "validation": 2, "test": 2})
    split = open_dataset(card, tmp_path / "data").splits["train"]
    small = open_store(split, card.dataset, 32, tmp_path / "cache", progress=False)
    from model_zoo.timm_models import RandomViTSmall  # not at the top: see `_pixels`

    adapter = RandomViTSmall().load()
    one, many = (
        cached_tokens(
            adapter, "toy", "train", small, tmp_path / f"c{size}", batch_size=size, dtype="float32"
        )
        for size in (1, 3)
    )
    assert one.tokens.shape == (4, 196, 384) and one.grid == (14, 14)
    np.testing.assert_allclose(one.tokens, many.tokens, rtol=1e-4, atol=1e-4)
    assert np.abs(one.tokens).max() > 0.1


def test_float16_is_the_float32_tokens_rounded_and_a_separate_entry(store, tmp_path):
    adapter = _pixels()
    cache = tmp_path / "cache"
    half = cached_tokens(adapter, "toy", "train", store, cache, batch_size=4)
    full = cached_tokens(adapter, "toy", "train", store, cache, batch_size=4, dtype="float32")
    assert not full.from_cache and full.tokens.dtype == np.float32
    assert full.nbytes == 2 * half.nbytes
    np.testing.assert_array_equal(half.tokens, full.tokens.astype(np.float16))
    folder = token_key(adapter, "toy", "train", View.clean()).folder(cache)
    assert {"clean.float16.npy", "clean.float32.npy"} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("every", [0.0, 1e9])
def test_interrupted_run_resumes_to_the_same_bytes(store, tmp_path, every):
    """Interrupted after two batches of four: with `every` 0 the periodic checkpoint has
    recorded them (seen on disk at the moment of the interrupt), with 1e9 the interrupt does."""
    cache = tmp_path / "cache"
    reference = cached_tokens(_pixels(), "toy", "train", store, tmp_path / "ref", batch_size=4)
    key = token_key(_pixels(), "toy", "train", View.clean())
    _, partial_sidecar = key.paths(cache, token_cache.PARTIAL)
    seen = []

    def at_interrupt():
        seen.append(
            json.loads(partial_sidecar.read_text())["done"] if partial_sidecar.exists() else 0
        )

    dies = _pixels()
    _counted(dies, dies_after=2, inspect=at_interrupt)
    with pytest.raises(KeyboardInterrupt):
        cached_tokens(dies, "toy", "train", store, cache, batch_size=4, checkpoint_seconds=every)
    assert seen == [8 if every == 0.0 else 0]
    assert json.loads(partial_sidecar.read_text())["done"] == 8

    survivor = _pixels()
    calls = _counted(survivor)
    lines = []
    resumed = cached_tokens(survivor, "toy", "train", store, cache, batch_size=4, log=lines.append)
    assert calls[0] == 1, "only the last batch (images 8 and 9) is computed again"
    assert lines[0].endswith("(resuming after 8 images)")
    data, sidecar = key.paths(cache)
    assert data.read_bytes() == key.paths(tmp_path / "ref")[0].read_bytes()
    np.testing.assert_array_equal(resumed.tokens, reference.tokens)
    assert json.loads(sidecar.read_text())["resumed_rows"] == 8
    assert not partial_sidecar.exists() and not key.paths(cache, token_cache.PARTIAL)[0].exists()


def test_interrupt_before_any_row_leaves_no_reserved_file(store, tmp_path):
    adapter = _pixels()
    _counted(adapter, dies_after=0)
    with pytest.raises(KeyboardInterrupt):
        cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", batch_size=4)
    folder = token_key(adapter, "toy", "train", View.clean()).folder(tmp_path / "cache")
    assert [p.name for p in folder.iterdir()] == [".clean.float16.lock"]


def test_corrupted_view_tokens_are_those_of_the_corrupted_images(store, tmp_path):
    view = View.parse("gaussian-noise:3")
    adapter = _pixels()
    lines = []
    noisy = cached_tokens(
        adapter,
        "toy",
        "train",
        store,
        tmp_path / "cache",
        batch_size=3,
        view=view,
        log=lines.append,
    )
    images = torch.from_numpy(np.array(store.images)).unsqueeze(1)
    masks = torch.from_numpy(np.array(store.masks)).unsqueeze(1)
    corrupted = view.apply(images, masks, store.ids).squeeze(1).numpy()
    np.testing.assert_array_equal(noisy.tokens, _pixel_tokens(corrupted).astype(np.float16))
    clean = cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", batch_size=3)
    assert not clean.from_cache and not np.array_equal(clean.tokens, noisy.tokens)
    assert "[gaussian-noise-s3]" in lines[0]
    data, sidecar = token_key(adapter, "toy", "train", view).paths(tmp_path / "cache")
    assert data.name.startswith(view.name) and data.exists()
    assert json.loads(sidecar.read_text())["view_code_sha256"] != ""


def test_a_changed_split_or_extraction_code_is_extracted_again(tmp_path, monkeypatch):
    adapter = _pixels()
    data, cache = tmp_path / "data", tmp_path / "cache"
    card = make_dataset(data, counts={"train": TRAIN, "validation": 2, "test": 2})

    def tokens():
        return cached_tokens(adapter, "toy", "train", _store(data, cache, card), cache)

    assert not tokens().from_cache and tokens().from_cache
    monkeypatch.setattr(extract_tokens, "extraction_code_digest", lambda: "edited")
    assert not tokens().from_cache and tokens().from_cache
    train_json = data / card.dataset / "train.json"
    train_json.write_text(json.dumps(json.loads(train_json.read_text())[:-1]))  # one image gone
    again = tokens()
    assert not again.from_cache and again.tokens.shape[0] == TRAIN - 1


def test_damaged_file_is_recomputed_with_one_warning(store, tmp_path, capsys):
    adapter = _pixels()
    first = np.array(cached_tokens(adapter, "toy", "train", store, tmp_path / "cache").tokens)
    data, _ = token_key(adapter, "toy", "train", View.clean()).paths(tmp_path / "cache")
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0x40
    data.write_bytes(bytes(raw))
    token_cache._VERIFIED.clear()  # another process
    capsys.readouterr()
    again = cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", log=lambda line: None)
    assert not again.from_cache
    np.testing.assert_array_equal(again.tokens, first)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: cached tokens")


def test_a_full_disk_is_one_error_line_and_leaves_no_file(store, tmp_path, monkeypatch):
    usage = type("Usage", (), {"free": 1000, "total": 1 << 40, "used": 0})
    monkeypatch.setattr(token_cache.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(UserError) as raised:
        cached_tokens(_pixels(), "toy", "train", store, tmp_path / "cache", log=print)
    message = str(raised.value)
    assert "\n" not in message and "20.5 kB" in message and "1.0 kB are free" in message
    assert "--cache" in message and "ubench cache rm" in message
    assert not (tmp_path / "cache" / "tokens").exists()


class ConvNoTokens(Adapter):
    """A third-party adapter that gives pooled features only."""

    name = "conv-no-tokens"
    poolings = ("avg",)
    info = ModelInfo("conv", "none", "none", "MIT", "")
    input_spec = InputSpec(size=(32, 32), mean=(0.0,), std=(1.0,), channels=1)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Conv2d(1, 6, 4, stride=4).eval()

    def load(self, weights=None):
        self._weights_id = "test"
        return self

    def forward_features(self, x):
        return {"avg": self.net(x).mean(dim=(2, 3))}


class ConvUndocumentedTokens(ConvNoTokens):
    """Tokens, but no documented token_grid / token_dim: the layout is read off one image."""

    name = "conv-tokens"

    def forward_tokens(self, x):
        return map_tokens(self.net(x))


def test_a_model_without_tokens_is_a_user_error(store, tmp_path):
    with pytest.raises(UserError, match=r"^model 'conv-no-tokens' gives no patch tokens \("):
        cached_tokens(ConvNoTokens().load(), "toy", "train", store, tmp_path / "cache")


def test_an_undocumented_token_layout_is_read_off_one_image(store, tmp_path):
    adapter = ConvUndocumentedTokens().load()
    result = cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", batch_size=4)
    assert result.grid == (8, 8) and result.tokens.shape == (TRAIN, 64, 6)
    x = torch.from_numpy(np.array(store.images)).unsqueeze(1).float() / 255.0
    with torch.inference_mode():
        expected = adapter.net(x).flatten(2).transpose(1, 2)
    np.testing.assert_array_equal(result.tokens, expected.numpy().astype(np.float16))


def test_tokens_beyond_float16_are_an_error_not_inf(store, tmp_path):
    adapter = _pixels()
    adapter.forward_tokens = lambda x: PatchTokens(
        F.unfold(x, 4, stride=4).transpose(1, 2) * 1e6, (8, 8)
    )
    with pytest.raises(UserError, match=r"beyond float16's 65504: store its tokens as float32"):
        cached_tokens(adapter, "toy", "train", store, tmp_path / "cache")
    folder = token_key(adapter, "toy", "train", View.clean()).folder(tmp_path / "cache")
    assert [p.name for p in folder.iterdir()] == [".clean.float16.lock"]
    wide = cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", dtype="float32")
    assert np.isfinite(wide.tokens).all() and wide.tokens.max() > 65504


def test_bad_batch_size_and_dtype_are_user_errors(store, tmp_path):
    adapter = _pixels()
    with pytest.raises(UserError, match="batch size"):
        cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", batch_size=0)
    with pytest.raises(UserError, match="token dtype 'int8'"):
        cached_tokens(adapter, "toy", "train", store, tmp_path / "cache", dtype="int8")


def _extract_in_process(card, data, cache, start, results) -> None:
    import time

    split = open_dataset(card, data).splits["train"]
    store = open_store(split, card.dataset, 32, cache, progress=False)
    adapter = ConvUndocumentedTokens().load()
    real = adapter.embed_tokens

    def slow(images):  # long enough for the other process to arrive while this one writes
        time.sleep(0.1)
        return real(images)

    adapter.embed_tokens = slow
    start.wait(timeout=120)
    result = cached_tokens(adapter, "toy", "train", store, cache, batch_size=1, log=lambda _: None)
    results.put(result.from_cache)


def test_two_processes_asking_for_one_entry_leave_one_valid_file(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    card = make_dataset(data, counts={"train": TRAIN, "validation": 2, "test": 2})
    store = _store(data, cache, card)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_extract_in_process, args=(card, data, cache, start, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    # the second waited for the first's lock, then read its file
    assert sorted(results.get(timeout=5) for _ in workers) == [False, True]
    adapter = ConvUndocumentedTokens().load()
    key = token_key(adapter, "toy", "train", View.clean())
    assert sorted(p.name for p in key.folder(cache).iterdir()) == [
        ".clean.float16.lock",
        "clean.float16.json",
        "clean.float16.npy",
    ]
    here = cached_tokens(adapter, "toy", "train", store, cache, batch_size=4)
    assert here.from_cache
    x = torch.from_numpy(np.array(store.images)).unsqueeze(1).float() / 255.0
    with torch.inference_mode():
        expected = map_tokens(adapter.net(x)).tokens.numpy().astype(np.float16)
    np.testing.assert_array_equal(here.tokens, expected)


def test_a_cache_that_cannot_be_written_is_one_error_line(store, tmp_path):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("")
    with pytest.raises(UserError, match=r"^cannot write tokens in .*point --cache"):
        cached_tokens(_pixels(), "toy", "train", store, not_a_folder, log=lambda _: None)
