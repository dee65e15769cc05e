"""A checkpoint written the way mmengine's `Runner.save_checkpoint` (and so its `CheckpointHook`)
writes one, without mmengine installed: stand-in classes under mmengine's module paths are
pickled as mmengine's own would be, then removed before the file is read.

Runner.save_checkpoint (mmengine 0.10.7) saves
    {'meta': {...}, 'state_dict': weights_to_cpu(model.state_dict()),
     'message_hub': message_hub.state_dict(), 'optimizer': optim_wrapper.state_dict(),
     'param_schedulers': [scheduler.state_dict(), ...]}
where `message_hub.state_dict()['log_scalars']` holds `HistoryBuffer` objects: their pickle
names `mmengine.logging.history_buffer.HistoryBuffer`, numpy arrays (`_log_history`) and, as
`builtins.getattr(HistoryBuffer, 'min')`, the statistics methods. A file written by the real
mmengine 0.10.7 had exactly these unsafe globals: builtins.getattr, the HistoryBuffer class,
numpy's `_reconstruct`, `ndarray` and `dtype`. That file (a Linear(3, 2) model, AdamW, LinearLR
and MultiStepLR, a MessageHub with two scalars) is tests/data/mmengine_runner_checkpoint.pth.
"""

from __future__ import annotations

import sys
import types
from collections import Counter, OrderedDict
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

# set when a stand-in's code runs on load: a safe reader never builds one
RAN_ON_LOAD: list[str] = []


class HistoryBuffer:
    """mmengine.logging.history_buffer.HistoryBuffer, as far as its pickle goes."""

    _statistics_methods: ClassVar[dict] = {}

    def __init__(self, values) -> None:
        self._log_history = np.asarray(values, dtype=np.float64)
        self._count_history = np.ones(len(values))
        self.max_length = 1000000

    def min(self):
        return self._log_history.min()

    def mean(self):
        return self._log_history.mean()

    def __getstate__(self) -> dict:
        self.__dict__.update(statistics_methods=self._statistics_methods)
        return self.__dict__

    def __setstate__(self, state) -> None:
        RAN_ON_LOAD.append("HistoryBuffer.__setstate__")
        self.__dict__.update(state)


HistoryBuffer._statistics_methods = {"min": HistoryBuffer.min, "mean": HistoryBuffer.mean}

_MODULES = ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer")


def _install() -> None:
    for name in _MODULES:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["mmengine.logging.history_buffer"].HistoryBuffer = HistoryBuffer
    HistoryBuffer.__module__ = "mmengine.logging.history_buffer"


def _uninstall() -> None:
    for name in _MODULES:
        sys.modules.pop(name, None)


def save_runner_checkpoint(path: Path, state_dict: dict, keep_modules: bool = False) -> None:
    """Write `state_dict` as a full mmengine Runner checkpoint at `path`. With `keep_modules`
    the stand-in modules stay importable (to show a reader does not use them anyway)."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 3)).sum().backward()
    optimizer.step()
    _install()
    try:
        checkpoint = {
            "meta": {
                "epoch": 12,
                "iter": 30000,
                "cfg": "model = dict(type='SAM')",
                "seed": 0,
                "experiment_name": "ultrasam",
                "mmengine_version": "0.10.7",
                "dataset_meta": {"classes": ("lesion",), "palette": [(220, 20, 60)]},
            },
            "state_dict": OrderedDict(state_dict),
            "message_hub": {
                "log_scalars": OrderedDict(
                    [
                        ("train/loss", HistoryBuffer([1.5, 1.2, 0.9])),
                        ("train/lr", HistoryBuffer([1e-4, 1e-4, 1e-4])),
                    ]
                ),
                "runtime_info": OrderedDict([("epoch", 12), ("iter", 30000)]),
                "resumed_keys": OrderedDict([("train/loss", True), ("epoch", True)]),
            },
            "optimizer": optimizer.state_dict(),
            "param_schedulers": [
                {"milestones": Counter({8: 1, 11: 1}), "gamma": 0.1, "last_step": 12},
            ],
        }
        torch.save(checkpoint, path)
    finally:
        if not keep_modules:
            _uninstall()


def remove_stand_ins() -> None:
    _uninstall()
