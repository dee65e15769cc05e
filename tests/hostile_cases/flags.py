"""Hostile flags: refused in one line before anything is written."""

from __future__ import annotations

from tests.hostile_cases.common import Case, Workspace, bench_args, write_task


def _bench(*extra: str, probe: str = "us-jepa-2026"):
    def prepare(ws: Workspace) -> list[str]:
        write_task(ws)
        args = bench_args("toy", *extra)
        args[args.index("--probe") + 1] = probe
        return args

    return prepare


def _empty_tasks(ws: Workspace) -> list[str]:
    write_task(ws)
    return ["bench", "--model", "pixels", "--tasks", "", "--device", "cpu", "--no-progress"]


def _new_data_zero_seeds(ws: Workspace) -> list[str]:
    # the default (generated) suite into a new data folder: nothing may be generated first
    return ["bench", "--model", "pixels", "--data", str(ws.root / "new"), "--seeds", "0"]


def _profile_into(where: str):
    """`--profile` into a folder that is missing, or that is a file."""

    def prepare(ws: Workspace) -> list[str]:
        write_task(ws)
        (ws.root / "a-file").write_text("x")
        return bench_args("toy", "--profile", str(ws.root / where))

    return prepare


CASES = [
    Case(
        "flags: negative max_epochs",
        _bench("--probe-option", "max_epochs=-5"),
        r"max_epochs must be at least 1",
    ),
    Case(
        "flags: max_epochs not a number",
        _bench("--probe-option", "max_epochs=abc"),
        r"max_epochs must be a whole number",
    ),
    Case("flags: a NaN tolerance-like probe option", _bench("--probe-option", "lr=.nan"), r"lr"),
    Case("flags: device mps on a machine without it", _bench("--device", "mps"), r"mps"),
    Case("flags: empty --tasks", _empty_tasks, r"--tasks"),
    Case("flags: --seeds 0 with a new data folder", _new_data_zero_seeds, r"--seeds"),
    Case(
        "flags: --profile into a missing folder",
        _profile_into("missing/run.prof"),
        r"--profile: folder .*missing does not exist",
    ),
    Case(
        "flags: --profile under a file",
        _profile_into("a-file/run.prof"),
        r"--profile: folder .*a-file is a file, not a folder",
    ),
    Case("flags: --profile that is a folder", _profile_into("."), r"--profile: .* is a folder"),
]
