import pytest
import torch
from safetensors.torch import load_file

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.models.layouts import CheckpointLayout, TensorSpec


def _layout(**overrides):
    fields = dict(
        name="demo",
        description="a demo",
        source="tests",
        file_name="demo.pth",
        file_format="torch",
        tensors={
            "model/blocks.0.w": TensorSpec((4, 3)),
            "model/blocks.1.w": TensorSpec((4, 3)),
            "model/blocks.0.b": TensorSpec((4,)),
            "model/head.w": TensorSpec((2, 4)),
            "model/steps": TensorSpec((1,), "int64"),
            "opt/state": TensorSpec((3,)),
        },
        extras={"epoch": 7, "opt/lr": 0.1},
        used_prefix="model/",
        ignored=(r"head\.",),
        block_patterns=(r"blocks\.(\d+)\.",),
        zeros=(r"blocks\.0\.b$",),
    )
    fields.update(overrides)
    return CheckpointLayout(**fields)


def test_round_trip_through_json():
    layout = _layout(values_added=5)
    again = CheckpointLayout.from_dict(layout.to_dict())
    assert again == layout


def test_used_keys_parameters_and_reduction():
    layout = _layout()
    assert layout.used_keys() == [
        "model/blocks.0.w",
        "model/blocks.1.w",
        "model/blocks.0.b",
        "model/steps",
    ]
    assert layout.parameter_count() == 12 + 12 + 4 + 1
    assert set(layout.reduced(1).tensors) == set(layout.tensors) - {"model/blocks.1.w"}


def test_random_checkpoint_nesting_zeros_and_dtypes(tmp_path):
    checkpoint = _layout().random_checkpoint(seed=3)
    assert checkpoint["epoch"] == 7 and checkpoint["opt"]["lr"] == 0.1
    assert checkpoint["model"]["steps"].dtype == torch.int64
    assert torch.equal(checkpoint["model"]["blocks.0.b"], torch.zeros(4))
    assert checkpoint["model"]["blocks.0.w"].abs().sum() > 0
    again = _layout().random_checkpoint(seed=3)
    assert torch.equal(again["model"]["blocks.1.w"], checkpoint["model"]["blocks.1.w"])
    path = _layout().build(tmp_path / "f.pth", seed=3)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["model"]["head.w"], checkpoint["model"]["head.w"])
    meta = _layout().random_checkpoint(device="meta")
    assert meta["model"]["blocks.0.w"].device.type == "meta"


def test_safetensors_files_are_flat(tmp_path):
    layout = _layout(
        file_format="safetensors",
        extras={},
        tensors={"a.w": TensorSpec((2, 2)), "b": TensorSpec((3,), "float16")},
    )
    flat = load_file(str(layout.build(tmp_path / "m.safetensors")))
    assert set(flat) == {"a.w", "b"} and flat["b"].dtype == torch.float16


def test_unknown_layout_is_a_user_error():
    with pytest.raises(UserError, match="no checkpoint layout named 'nope'"):
        CheckpointLayout.load("nope")


def test_every_shipped_manifest_reads():
    from ultrabench_eval.models.layouts import layout_dirs

    names = [p.stem for folder in layout_dirs() for p in folder.glob("*.json")]
    assert len(names) > 40
    for name in names:
        layout = CheckpointLayout.load(name)
        assert layout.name == name and layout.source and layout.used_keys()
