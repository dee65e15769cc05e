"""Which torch device a run uses: one rule for extraction, every probe and each distributed rank.

`auto` takes the GPU when one is visible, otherwise the CPU. Any other name is taken as asked, so
`--device cpu` keeps everything on the CPU even on a machine with a GPU.
"""

from __future__ import annotations

import torch

from ultrabench_eval.core.errors import UserError

__all__ = ["AUTO", "rank_device", "resolve_device"]

AUTO = "auto"


def resolve_device(name: str | torch.device | None = AUTO) -> torch.device:
    """`auto` (or None) picks the GPU when there is one; asking for one that is not there is an
    error."""
    if isinstance(name, torch.device):
        name = str(name)
    if name in (None, "", AUTO):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{name}' asked for, but no CUDA GPU is visible (use --device cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device '{name}' asked for, but this machine has no MPS (use cpu)")
    return device


def rank_device(device: torch.device, rank: int, local_rank: int) -> torch.device:
    """The device of one process of a multi-process job on `device`: on GPUs, GPU `local_rank`
    of this machine (each process its own); on the CPU, the CPU."""
    if device.type != "cuda":
        return device
    if torch.cuda.device_count() <= local_rank:
        raise UserError(
            f"rank {rank} needs GPU {local_rank} but only {torch.cuda.device_count()} are "
            "visible (use fewer --nproc-per-node)"
        )
    return torch.device("cuda", local_rank)
