"""Record reuse: a record on disk whose inputs are those of this run is not computed again, so
an interrupted or repeated run (bench or robustness) redoes only what is missing."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import NamedTuple, TypeVar

from ultrabench_eval.core.errors import UserError
from ultrabench_eval.protocols.config import BenchConfig
from ultrabench_eval.results.record import ResultRecord, record_path

Key = TypeVar("Key", bound=Hashable)


class Expected(NamedTuple):
    """The record a run would write: its protocol id and the digest of its inputs."""

    protocol_id: str
    inputs_sha256: str


def reusable_records(
    config: BenchConfig, model: str, task: str, expected: Mapping[Key, Expected]
) -> dict[Key, ResultRecord]:
    """The records on disk, by the caller's key, whose inputs digest is the expected one; none
    when `config.overwrite` asks to refit everything."""
    if config.overwrite:
        return {}
    out = {}
    for key, wanted in expected.items():
        path = record_path(config.results_root, model, task, wanted.protocol_id)
        try:
            record = ResultRecord.from_file(path)
        except UserError:  # missing, unreadable or malformed: computed again and rewritten
            continue
        if record.inputs_sha256 == wanted.inputs_sha256:
            out[key] = record
    return out
