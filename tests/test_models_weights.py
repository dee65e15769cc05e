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
