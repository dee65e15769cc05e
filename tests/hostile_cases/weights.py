"""Hostile `--weights` files: each is one line naming the file, what was expected and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tests.hostile_cases.common import Case, Workspace, bench_args, write_task

MODEL = "dinov3-vits16"  # the smallest checkpoint model: its files build in a second


def _bench(ws: Workspace, weights: Path) -> list[str]:
    write_task(ws)
    args = bench_args("toy", "--weights", str(weights))
    args[args.index("pixels")] = MODEL
    return args


def _file(ws: Workspace, name: str) -> Path:
    ws.root.joinpath("w").mkdir(exist_ok=True)
    return ws.root / "w" / name


def _not_a_checkpoint(ws: Workspace) -> list[str]:
    path = _file(ws, "notes.pth")
    path.write_text("these are not weights\n")
    return _bench(ws, path)


def _truncated(ws: Workspace) -> list[str]:
    path = _file(ws, "cut.pth")
    torch.save({"cls_token": torch.zeros(1, 1, 384), "norm.weight": torch.ones(384)}, path)
    path.write_bytes(path.read_bytes()[:200])
    return _bench(ws, path)


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _pickle_with_code(ws: Workspace) -> list[str]:
    path = _file(ws, "evil.pth")
    torch.save({"cls_token": _Payload()}, path)
    return _bench(ws, path)


def _a_list(ws: Workspace) -> list[str]:
    path = _file(ws, "list.pth")
    torch.save([torch.zeros(2)], path)
    return _bench(ws, path)


def _empty(ws: Workspace) -> list[str]:
    path = _file(ws, "empty.pth")
    path.write_bytes(b"")
    return _bench(ws, path)


def _bad_safetensors(ws: Workspace) -> list[str]:
    path = _file(ws, "model.safetensors")
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    return _bench(ws, path)


def _directory(ws: Workspace) -> list[str]:
    return _bench(ws, ws.root)


def _missing(ws: Workspace) -> list[str]:
    return _bench(ws, ws.root / "nowhere.pth")


def _wrong_keys(ws: Workspace) -> list[str]:
    path = _file(ws, "other.pth")
    torch.save({"encoder.conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    return _bench(ws, path)


def _wrong_shapes(ws: Workspace) -> list[str]:
    from ultrabench_eval.models.factory import make_adapter

    keys = make_adapter(MODEL).meta_model().state_dict()
    path = _file(ws, "shapes.pth")
    torch.save({k: torch.zeros(2) for k in keys}, path)
    return _bench(ws, path)


CASES = [
    Case("weights: a text file", _not_a_checkpoint, r"notes\.pth.*not a torch checkpoint"),
    Case("weights: a truncated file", _truncated, r"cut\.pth.*truncated"),
    Case("weights: a pickle with code", _pickle_with_code, r"evil\.pth.*no code .* was run"),
    Case("weights: a list, not a state dict", _a_list, r"list\.pth holds a list"),
    Case("weights: an empty file", _empty, r"empty\.pth"),
    Case("weights: a broken safetensors file", _bad_safetensors, r"model\.safetensors"),
    Case("weights: a directory", _directory, r"is a directory"),
    Case("weights: a missing file", _missing, r"weights file not found"),
    Case("weights: another model's keys", _wrong_keys, r"other\.pth"),
    Case("weights: wrong shapes", _wrong_shapes, r"shapes\.pth.*other shapes"),
]
