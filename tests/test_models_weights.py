import pytest
import torch

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.weights import (
    file_sha256,
    read_checkpoint,
    select_state_dict,
    state_dict_sha256,
    strict_load,
    strip_prefixes,
)


def test_strip_prefixes_repeatedly():
    state = {"module.encoder.w": 1, "encoder.b": 2, "head": 3}
    assert strip_prefixes(state, ["module.", "encoder."]) == {"w": 1, "b": 2, "head": 3}


def test_select_state_dict():
    flat = {"w": torch.zeros(1)}
    assert select_state_dict({"target_encoder": flat, "opt": {}}, ["target_encoder"], "x") == flat
    assert select_state_dict(flat, ["model"], "x") == flat
    with pytest.raises(UserError, match="no state dict under any of"):
        select_state_dict({"epoch": 3, "opt": {"lr": 1}}, ["model"], "ckpt.pth")


def test_strict_load_reports_every_kind_of_mismatch():
    module = torch.nn.Linear(3, 2)
    good = {k: v.clone() for k, v in module.state_dict().items()}
    strict_load(module, good, "f")
    with pytest.raises(
        UserError, match=r"1 missing keys \(e.g. bias\); 1 unexpected keys \(e.g. extra\)"
    ):
        strict_load(module, {"weight": good["weight"], "extra": torch.zeros(1)}, "f")
    with pytest.raises(UserError, match=r"checkpoint \(4, 3\) vs model \(2, 3\)"):
        strict_load(module, {**good, "weight": torch.zeros(4, 3)}, "f")


def test_read_checkpoint_errors(tmp_path):
    with pytest.raises(UserError, match="weights file not found"):
        read_checkpoint(tmp_path / "none.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read weights file"):
        read_checkpoint(junk)


def test_hashes_are_stable(tmp_path):
    state = {"a": torch.arange(4.0), "b": torch.ones(2, 2)}
    assert state_dict_sha256(state) == state_dict_sha256({k: v.clone() for k, v in state.items()})
    assert state_dict_sha256(state) != state_dict_sha256({**state, "a": torch.arange(4.0) + 1})
    # a 0-d tensor (BatchNorm's counter) hashes too, by its value
    counter = {**state, "n": torch.tensor(3)}
    assert state_dict_sha256(counter) != state_dict_sha256({**state, "n": torch.tensor(4)})
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_read_checkpoint_maps_zip_files_and_reads_legacy_files_whole(tmp_path, monkeypatch):
    state = {"w": torch.arange(6.0).reshape(2, 3), "nested": {"b": torch.ones(2)}}
    modern, legacy = tmp_path / "modern.pth", tmp_path / "legacy.pth"
    torch.save(state, modern)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    asked = []
    real_load = torch.load

    def spy(path, **kwargs):
        asked.append((path.name, kwargs.get("mmap", False)))
        return real_load(path, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    for path in (modern, legacy):
        loaded = read_checkpoint(path)
        torch.testing.assert_close(loaded["w"], state["w"])
        torch.testing.assert_close(loaded["nested"]["b"], state["nested"]["b"])
    # mapped where the format allows; the legacy format is read again without the map
    assert asked == [("modern.pth", True), ("legacy.pth", True), ("legacy.pth", False)]


def test_read_checkpoint_reads_safetensors(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(2, 2)}, str(path))
    torch.testing.assert_close(read_checkpoint(path)["w"], torch.ones(2, 2))


def test_importing_the_package_leaves_torchs_safe_globals_as_they_were(tmp_path):
    """what a loader allows is allowed in its own call only."""
    import subprocess
    import sys

    path = tmp_path / "mae.pth"
    script = f"""
import argparse, torch
def ours():  # torch's own modules (distributed, dynamo) add theirs when timm imports them
    return [g for g in torch.serialization.get_safe_globals()
            if not (g[0] if isinstance(g, tuple) else g).__module__.startswith("torch")]
before = ours()
import ultrabench_eval.cli, ultrabench_eval.models.weights as weights, model_zoo
assert ours() == before, f"changed on import: {{ours()}}"
torch.save({{"model": {{"w": torch.ones(1)}}, "args": argparse.Namespace(lr=1)}}, {str(path)!r})
assert weights.read_checkpoint({str(path)!r})["args"].lr == 1  # allowed in the call
assert ours() == before, "changed by a read"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "content, expect",
    [
        (b"garbage", r"not a torch checkpoint"),
        (None, r"truncated or not a torch checkpoint"),
        ("code", r"refuses to build; no code from the file was run"),
    ],
)
def test_read_errors_are_one_line_with_torchs_text_as_the_cause(tmp_path, content, expect):
    """one line (file, what was expected, how to fix); torch's multi-line
    message stays available as the cause (`ubench --verbose`)."""
    import os

    path = tmp_path / "weights.pth"
    if content is None:
        torch.save({"w": torch.ones(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif content == "code":

        class Payload:
            def __reduce__(self):
                return (os.system, ("true",))

        torch.save({"w": Payload()}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match=expect) as caught:
        read_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "--verbose" in message
    assert caught.value.__cause__ is not None and str(caught.value.__cause__) not in message


def test_a_directory_is_named_as_one(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_a_real_mmengine_checkpoint_is_read_with_its_training_state_dropped():
    """A file written by mmengine 0.10.7's own save_checkpoint in the Runner's layout (see
    tests/data/mmengine_runner_checkpoint.pth's note in tests/mmengine_checkpoint.py)."""
    from pathlib import Path

    from ultrabench_eval.models.weights import MMENGINE_RUNNER_STATE

    path = Path(__file__).parent / "data" / "mmengine_runner_checkpoint.pth"
    with pytest.raises(UserError, match="mmengine.logging.history_buffer.HistoryBuffer"):
        read_checkpoint(path)
    loaded = read_checkpoint(path, inert_globals=MMENGINE_RUNNER_STATE)
    assert sorted(loaded) == ["meta", "optimizer", "param_schedulers", "state_dict"]
    assert sorted(loaded["state_dict"]) == ["bias", "weight"]
