"""One device rule for extraction, every probe and each distributed rank."""

from __future__ import annotations

import pytest
import torch

from ultrabench_eval.core.device import rank_device, resolve_device
from ultrabench_eval.core.errors import UserError


@pytest.fixture
def gpu_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_takes_the_gpu_when_there_is_one(gpu_visible):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device(None) == torch.device("cuda")
    assert resolve_device() == torch.device("cuda")


def test_auto_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cpu_stays_cpu_even_with_a_gpu(gpu_visible):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_a_missing_gpu_or_an_unknown_name_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_each_rank_takes_its_own_gpu(gpu_visible):
    assert rank_device(torch.device("cuda"), rank=3, local_rank=1) == torch.device("cuda", 1)
    with pytest.raises(UserError, match="rank 4 needs GPU 2 but only 2 are visible"):
        rank_device(torch.device("cuda"), rank=4, local_rank=2)
    assert rank_device(torch.device("cpu"), rank=4, local_rank=2) == torch.device("cpu")
