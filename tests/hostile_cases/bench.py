"""Hostile flags of `ubench bench`."""

from __future__ import annotations

from tests.hostile_cases.common import Case, Workspace, bench_args, write_task


def _zero_batch_probe(ws: Workspace) -> list[str]:
    write_task(ws)
    return bench_args("toy", "--probe-option", "max_iter=0")


def _unknown_model(ws: Workspace) -> list[str]:
    write_task(ws)
    return ["bench", "--model", "no-such-model", "--tasks", "toy", "--no-progress"]


CASES = [
    Case("bench: a probe option out of range", _zero_batch_probe, r"max_iter"),
    Case("bench: an unknown model", _unknown_model, r"unknown model 'no-such-model'"),
]
