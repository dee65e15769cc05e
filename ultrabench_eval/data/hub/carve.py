"""A validation split carved from train when a dataset has none: whole groups (patients) at a
time where there are groups, class by class where there are labels, drawn by a seed.

Each group goes with the class most of its images have; within each class a seeded shuffle of
its groups is taken until the class's share of validation images reaches the fraction. A class
keeps at least one group in train, so every class can still be trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Carved:
    train: np.ndarray  # row positions kept in train, ascending
    validation: np.ndarray  # row positions moved to validation, ascending
    stratified: bool
    grouped: bool


def carve_validation(
    labels: np.ndarray | None,
    groups: list[str | None] | None,
    fraction: float,
    seed: int,
    count: int | None = None,
) -> Carved:
    """Split train's rows into (train, validation); `labels` None: not stratified, `groups`
    None: one group per row (a row without a group is its own group). `count`: the number of
    rows, needed when there are neither labels nor groups to count them."""
    if count is None:
        if labels is None and groups is None:
            raise ValueError("carve_validation needs count without labels or groups")
        count = len(labels) if labels is not None else len(groups)
    keys = [
        f"row:{i}" if groups is None or groups[i] is None else f"group:{groups[i]}"
        for i in range(count)
    ]
    members: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        members.setdefault(key, []).append(row)
    strata: dict[int, list[str]] = {}
    for key, rows in members.items():
        stratum = 0 if labels is None else int(np.bincount(labels[rows]).argmax())
        strata.setdefault(stratum, []).append(key)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for stratum in sorted(strata):
        keys_here = sorted(strata[stratum])  # a fixed order before the seeded shuffle
        order = rng.permutation(len(keys_here))
        rows_here = sum(len(members[k]) for k in keys_here)
        target = fraction * rows_here
        taken = 0
        for position in order[:-1]:  # the last group stays in train
            if taken >= target or abs(taken + len(members[keys_here[position]]) - target) > abs(
                taken - target
            ):
                continue
            chosen += members[keys_here[position]]
            taken += len(members[keys_here[position]])
    if not chosen and strata:
        # too few rows for the fraction: one group still makes a validation split
        largest = max(strata, key=lambda s: (len(strata[s]), -s))
        if len(strata[largest]) > 1:
            keys_here = sorted(strata[largest])
            chosen = members[keys_here[int(rng.integers(len(keys_here)))]]
    validation = np.array(sorted(chosen), dtype=np.int64)
    train = np.setdiff1d(np.arange(count, dtype=np.int64), validation)
    return Carved(
        train=train,
        validation=validation,
        stratified=labels is not None,
        grouped=groups is not None,
    )
