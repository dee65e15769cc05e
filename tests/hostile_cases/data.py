"""Hostile task folders and cache places: paths that leave the
task folder, images or patients shared between splits, a cache that cannot be written."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from tests.hostile_cases.common import Case, Workspace, bench_args, write_task


def _edit_first(split: str, **changes) -> Callable[[str, list[dict]], list[dict]]:
    def edit(name: str, records: list[dict]) -> list[dict]:
        if name == split:
            records[0] = {**records[0], **changes}
        return records

    return edit


def _outside_file(ws: Workspace) -> str:
    secret = ws.root / "outside" / "secret.png"
    secret.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ws.data / "toy_v1" / "images" / "train_000.png", secret)
    return str(secret)


def _relative_escape(ws: Workspace) -> list[str]:
    folder = write_task(ws)
    _outside_file(ws)
    write_task(ws, edit_records=_edit_first("train", image="../../outside/secret.png"))
    assert (folder / "../../outside/secret.png").is_file()
    return bench_args()


def _absolute_escape(ws: Workspace) -> list[str]:
    write_task(ws)
    secret = _outside_file(ws)
    write_task(ws, edit_records=_edit_first("test", image=secret))
    return bench_args()


def _mask_escape(ws: Workspace) -> list[str]:
    write_task(ws, edit_records=_edit_first("validation", scan_mask="/etc/hostname"))
    return bench_args()


def _symlink_escape(ws: Workspace) -> list[str]:
    folder = write_task(ws)
    secret = _outside_file(ws)
    (folder / "images" / "link.png").symlink_to(secret)
    write_task(ws, edit_records=_edit_first("train", image="images/link.png"))
    (folder / "images" / "link.png").unlink(missing_ok=True)
    (folder / "images" / "link.png").symlink_to(secret)
    return bench_args()


def _escape_in_tasks_check(ws: Workspace) -> list[str]:
    _relative_escape(ws)
    # `tasks check` reports a failed check (exit 1); `extract` refuses the folder (exit 2)
    return ["extract", "--model", "pixels", "--tasks", "toy", "--device", "cpu", "--no-progress"]


def _same_path_in_train_and_test(ws: Workspace) -> list[str]:
    def edit(name: str, records: list[dict]) -> list[dict]:
        if name == "test":
            records[0] = {**records[0], "image": "images/train_000.png", "label": 0}
        return records

    write_task(ws, card_extra={"group_field": None}, edit_records=edit)
    return bench_args()


def _same_bytes_in_train_and_test(ws: Workspace) -> list[str]:
    folder = write_task(ws, card_extra={"group_field": None})
    shutil.copy(folder / "images" / "train_000.png", folder / "images" / "test_000.png")
    return bench_args()


def _patient_in_two_splits(ws: Workspace) -> list[str]:
    write_task(ws, edit_records=_edit_first("test", patient="ptrain0"))
    return bench_args()


def _overlap_in_extract(ws: Workspace) -> list[str]:
    write_task(ws, edit_records=_edit_first("validation", patient="ptrain1"))
    return ["extract", "--model", "pixels", "--tasks", "toy", "--device", "cpu", "--no-progress"]


def _cache_is_a_file(ws: Workspace) -> list[str]:
    write_task(ws)
    ws.cache.write_text("not a folder\n")
    return bench_args()


def _cache_unwritable(ws: Workspace) -> list[str]:
    write_task(ws)
    return bench_args("toy", "--cache", "/proc/ubench-cache-cannot-exist")


CASES = [
    Case("data: image path ../.. outside the task folder", _relative_escape, r"outside the task"),
    Case("data: absolute image path outside the folder", _absolute_escape, r"test\.json record 0"),
    Case("data: scan_mask /etc/hostname", _mask_escape, r"scan_mask path /etc/hostname lies out"),
    Case("data: symlink to a file outside the folder", _symlink_escape, r"images/link\.png"),
    Case("data: extract refuses paths outside", _escape_in_tasks_check, r"outside the task"),
    Case(
        "data: one image path in train and test",
        _same_path_in_train_and_test,
        r"train\.json and test\.json share 1 image path.*--allow-overlap",
    ),
    Case(
        "data: one image's bytes in train and test",
        _same_bytes_in_train_and_test,
        r"train\.json and test\.json share 1 image content.*test_000\.png|train_000\.png",
    ),
    Case(
        "data: a patient in train and test",
        _patient_in_two_splits,
        r"train\.json and test\.json share 1 patient.*ptrain0",
    ),
    Case("data: extract refuses overlap", _overlap_in_extract, r"share 1 patient"),
    Case("data: cache path is a regular file", _cache_is_a_file, r"cannot write the image store"),
    Case("data: cache path cannot be made", _cache_unwritable, r"cannot write the image store"),
]


def _results_is_a_file(ws: Workspace) -> list[str]:
    write_task(ws)
    ws.results.parent.mkdir(parents=True, exist_ok=True)
    ws.results.write_text("not a folder\n")
    return bench_args()


def _results_unwritable(ws: Workspace) -> list[str]:
    write_task(ws)
    return bench_args("toy", "--results", "/proc/ubench-results-cannot-exist")


CASES += [
    Case("data: results path is a regular file", _results_is_a_file, r"results", no_results=False),
    Case("data: results path cannot be made", _results_unwritable, r"results"),
]
