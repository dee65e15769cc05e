"""The result record: one model x task x protocol, typed, and its JSON file.

`ResultRecord.to_dict()` is the file's JSON, key for key in the order the files have always had;
`from_dict` reads every record written since the schema began (a field an older record lacks
reads as None, and `to_dict` writes it as null). Readers use the accessors (`model_name`,
`base_protocol`, `budget`, `corruption`...), never the raw JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultrabench_eval.core import atomic
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.core.naming import safe_name
from ultrabench_eval.probes.fewshot import Budget
from ultrabench_eval.probes.options import NUMBER_NEUTRAL_OPTIONS

SCHEMA = "ultrabench-eval/result/1"
CLEAN = "clean"
# How tables, plots and messages name a record's headline score (`Scores.metric`).
METRIC_NAMES = {"macro_f1": "macro-F1", "dice": "Dice"}


def metric_label(metric: str | None) -> str:
    """`macro-F1` or `Dice` (an older record without a metric is macro-F1)."""
    return METRIC_NAMES.get(metric or "macro_f1", metric or "macro-F1")


# `<corruption>-s<severity>[-seed<n>]`, the name `views.View` gives a corrupted view
_VIEW_NAME = re.compile(r"^(?P<corruption>.+)-s(?P<severity>\d+)(?:-seed\d+)?$")


@dataclass(frozen=True)
class ModelPart:
    name: str
    fingerprint: str | None = None
    weights: Any = None
    pooling: str | None = None
    input_spec: dict[str, Any] | None = None
    info: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskPart:
    name: str
    dataset: str | None = None
    classes: list[str] | None = None
    split_sizes: dict[str, int] | None = None
    # run with --allow-overlap: what the splits share (empty: nothing); None: overlap refused
    allow_overlap: list[str] | None = None
    # a Hugging Face dataset's task: its id or path, commit, fingerprints, split mapping and
    # carving (`data.hub.materialise`); None for a prepared folder
    source: dict[str, Any] | None = None


@dataclass(frozen=True)
class CorruptionPart:
    """What a record scored on corrupted test images says about the corruption."""

    view_key: str | None  # the view's full name, with its parameters' digest
    corruption: str | None
    severity: int | None
    seed: int | None
    parameters: dict[str, Any] | None


@dataclass(frozen=True)
class ProtocolPart:
    id: str
    probe: str
    probe_options: dict[str, Any] | None = None
    budget: str | None = None  # the budget's label, `Budget.label`
    fraction: float | None = None
    shots: int | None = None
    view: str = CLEAN
    # the seed of each distinct probe fit behind the scores (the first seed that made it): a
    # probe that ignores the seed, on the same training labels, is fitted once for all seeds
    seeds: list[int] | None = None
    image_store: list[Any] | None = None  # [size, interpolation]
    corruption: CorruptionPart | None = None  # only for corrupted views
    # the seeds the run asked for (`--seeds`); None in records written before fits were shared,
    # whose `seeds` lists every seed asked
    seeds_requested: int | None = None


@dataclass(frozen=True)
class Scores:
    """Test macro-F1 (x100) over the distinct probe fits: one per seed, except where seeds
    share one fit (a probe that ignores the seed, on the same training labels)."""

    mean: float
    std: float  # sample std over the fits; 0.0 for one fit, where there is no spread to show
    metric: str | None = "macro_f1"
    per_seed: list[float] | None = None  # one per distinct fit
    val_per_seed: list[float] | None = None
    ci95: list[float] | None = None  # bootstrap over test images of the seed mean
    bootstrap_draws: int | None = None
    # how many distinct fits the scores come from; None in older records: one per score
    fits: int | None = None
    # scores beside the headline one, by name: for segmentation `miou` ({mean, std, per_seed,
    # val_per_seed}) and `dice_per_class` ({class: mean Dice over the fits})
    secondary: dict[str, Any] | None = None

    @property
    def fit_count(self) -> int | None:
        """Distinct probe fits behind the scores: an older record has one per per-seed score;
        None when it lists none."""
        if self.fits is not None:
            return self.fits
        return len(self.per_seed) if self.per_seed else None

    @property
    def single_fit(self) -> bool:
        """One fit: the std says nothing (tables show the score without `± 0.0`)."""
        return self.fit_count == 1

    @property
    def spread(self) -> float | None:
        """The std when there is one (two fits or more), else None."""
        return None if self.single_fit else self.std

    def text(self, pm: str = "±") -> str:
        """`81.2 ± 1.3`, or `81.2 (1 fit)` (`score_text`)."""
        return score_text(self.mean, self.spread, self.fit_count, pm)


ONE_FIT = "(1 fit)"
ONE_FIT_NOTE = (
    f"{ONE_FIT}: one probe fit behind the score (one seed asked, or a probe that ignores the "
    "seed, trained on the same labels for every seed): no spread over seeds to show"
)


def score_text(mean: float, std: float | None, fits: int | None = None, pm: str = "±") -> str:
    """How every table and log line writes a score: `81.2 ± 1.3` (mean ± std over the fits),
    `81.2 (1 fit)` when one fit stands for every seed, `81.2` when there is no std."""
    if fits == 1:
        return f"{mean:.1f} {ONE_FIT}"
    if std is None:
        return f"{mean:.1f}"
    return f"{mean:.1f} {pm} {std:.1f}"


@dataclass(frozen=True)
class TestPart:
    """What paired comparisons between models need: the same images, every seed's answers."""

    ids_sha256: str | None
    labels: list[int] | None
    predictions_per_seed: list[list[int]] | None
    # segmentation: per distinct fit, per test image, per class: [tp, fp, fn] pixel counts
    # inside the scan mask (what Dice, IoU and their bootstrap need; the masks are not kept)
    counts_per_seed: list[list[list[list[int]]]] | None = None


@dataclass(frozen=True)
class ResultRecord:
    model: ModelPart
    task: TaskPart
    protocol: ProtocolPart
    scores: Scores
    test: TestPart | None = None
    inputs_sha256: str | None = None  # everything the scores depend on; reuse compares it
    hyperparameters_per_seed: list[dict[str, Any]] | None = None
    train_size_per_seed: list[int] | None = None
    timings: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    git_revision: str | None = None
    created: str | None = None
    schema: str = SCHEMA
    code_sha256: str | None = None  # the package's source digest: code identity without git
    stages: dict[str, Any] | None = None  # where extraction and probe ran, at which precision

    # -- what readers ask ----------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def protocol_id(self) -> str:
        return self.protocol.id

    @property
    def probe(self) -> str:
        return self.protocol.probe

    @property
    def probe_variant(self) -> str:
        """The probe with the options that change its numbers (`us-jepa-2026+max_epochs=1`):
        the protocol id before its budget and view, which option values never contain."""
        return re.split(r"[@/]", self.protocol_id, maxsplit=1)[0]

    @property
    def view(self) -> str:
        return self.protocol.view

    @property
    def is_clean(self) -> bool:
        return self.protocol.view == CLEAN

    @property
    def base_protocol(self) -> str:
        """The protocol id without its view: a corrupted record's clean counterpart."""
        suffix = f"/{self.view}"
        if not self.is_clean and self.protocol_id.endswith(suffix):
            return self.protocol_id[: -len(suffix)]
        return self.protocol_id

    @property
    def corruption(self) -> tuple[str, int | None]:
        """(corruption, severity) of a corrupted record: the record's own fields when the
        robustness protocol wrote them, else parsed from the view name, else (view, None)."""
        part = self.protocol.corruption
        if part is not None and part.corruption and part.severity is not None:
            return part.corruption, int(part.severity)
        match = _VIEW_NAME.match(self.view)
        if match:
            return match["corruption"], int(match["severity"])
        return self.view, None

    @property
    def budget(self) -> Budget:
        return Budget.of(self.protocol.fraction, self.protocol.shots)

    @property
    def is_full_budget(self) -> bool:
        """All training labels (not a fraction below 1, not K shots)."""
        return self.budget.is_full

    @property
    def n_classes(self) -> int:
        return len(self.task.classes or [])

    @property
    def has_predictions(self) -> bool:
        return bool(self.test and self.test.predictions_per_seed and self.test.labels)

    @property
    def has_counts(self) -> bool:
        """Per-image confusion counts of a segmentation record (its paired statistics)."""
        return bool(self.test and self.test.counts_per_seed)

    @property
    def is_segmentation(self) -> bool:
        return self.scores.metric == "dice"

    def secondary_score(self, name: str) -> dict[str, Any] | None:
        """A secondary score (`miou`) as {mean, std, per_seed, ...}, or None."""
        value = (self.scores.secondary or {}).get(name)
        return value if isinstance(value, dict) else None

    @property
    def seed_count(self) -> int:
        """Seeds the run asked for (several may share one fit, see `fit_count`); in an older
        record, the seeds listed by the protocol, else the per-seed scores."""
        if self.protocol.seeds_requested is not None:
            return self.protocol.seeds_requested
        return len(self.protocol.seeds or self.scores.per_seed or [])

    @property
    def fit_count(self) -> int | None:
        """Distinct probe fits behind the scores (`Scores.fit_count`)."""
        return self.scores.fit_count

    # -- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON, in the files' key order."""
        p, s, t = self.protocol, self.scores, self.test
        protocol: dict[str, Any] = {
            "id": p.id,
            "probe": p.probe,
            "probe_options": p.probe_options,
            "budget": p.budget,
            "fraction": p.fraction,
            "shots": p.shots,
            "view": p.view,
            "seeds": p.seeds,
            # added later: written only when set, so older files round-trip
            **({"seeds_requested": p.seeds_requested} if p.seeds_requested is not None else {}),
            "image_store": p.image_store,
        }
        if p.corruption is not None:
            c = p.corruption
            protocol.update(
                view_key=c.view_key,
                corruption=c.corruption,
                severity=c.severity,
                corruption_seed=c.seed,
                corruption_parameters=c.parameters,
            )
        hyperparameters = self.hyperparameters_per_seed
        # fields added after schema 1 began: written only when set, so older files round-trip
        later = {"code_sha256": self.code_sha256, "stages": self.stages}
        return {
            "schema": self.schema,
            "inputs_sha256": self.inputs_sha256,
            "model": {
                "name": self.model.name,
                "fingerprint": self.model.fingerprint,
                "weights": self.model.weights,
                "pooling": self.model.pooling,
                "input_spec": self.model.input_spec,
                "info": self.model.info,
            },
            "task": {
                "name": self.task.name,
                "dataset": self.task.dataset,
                "classes": self.task.classes,
                "split_sizes": self.task.split_sizes,
                # only a run with --allow-overlap says so: other records stay as they were
                **(
                    {"allow_overlap": self.task.allow_overlap}
                    if self.task.allow_overlap is not None
                    else {}
                ),
                **({"source": self.task.source} if self.task.source is not None else {}),
            },
            "protocol": protocol,
            "scores": {
                "metric": s.metric,
                "per_seed": s.per_seed,
                "mean": s.mean,
                "std": s.std,
                **({"fits": s.fits} if s.fits is not None else {}),
                "val_per_seed": s.val_per_seed,
                "ci95": s.ci95,
                "bootstrap_draws": s.bootstrap_draws,
                **({"secondary": s.secondary} if s.secondary is not None else {}),
            },
            "test": None
            if t is None
            else {
                "ids_sha256": t.ids_sha256,
                "labels": t.labels,
                "predictions_per_seed": t.predictions_per_seed,
                **({"counts_per_seed": t.counts_per_seed} if t.counts_per_seed else {}),
            },
            "hyperparameters": None if hyperparameters is None else {"per_seed": hyperparameters},
            "train_size_per_seed": self.train_size_per_seed,
            "timings": self.timings,
            "versions": self.versions,
            "git_revision": self.git_revision,
            **{k: v for k, v in later.items() if v is not None},
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "<in memory>") -> ResultRecord:
        """A record from its JSON; UserError (one line, naming `where`) when it is malformed."""
        return _Parser(where).record(data)

    @classmethod
    def from_file(cls, path: Path) -> ResultRecord:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read result record {path}: {exc}") from None
        return cls.from_dict(data, str(path))


class _Parser:
    """Reads a record's JSON with a type check per field, so a hand-edited or truncated file is
    one clear line instead of a KeyError deep inside a report."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, what: str) -> UserError:
        return UserError(
            f"malformed result record {self.where}: {what} (rerun its protocol with "
            "--overwrite, or remove the file)"
        )

    def record(self, data: Any) -> ResultRecord:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UserError(f"{self.where} is not a ubench result record (schema {SCHEMA})")
        model, task = self.part(data, "model"), self.part(data, "task")
        protocol, scores = self.part(data, "protocol"), self.part(data, "scores")
        test = self.optional(data, "test", dict)
        hyperparameters = self.optional(data, "hyperparameters", dict) or {}
        return ResultRecord(
            schema=SCHEMA,
            inputs_sha256=self.optional(data, "inputs_sha256", str),
            model=ModelPart(
                name=self.required(model, "model.name", str),
                fingerprint=self.optional(model, "fingerprint", str),
                weights=model.get("weights"),
                pooling=self.optional(model, "pooling", str),
                input_spec=self.optional(model, "input_spec", dict),
                info=self.optional(model, "info", dict),
            ),
            task=TaskPart(
                name=self.required(task, "task.name", str),
                dataset=self.optional(task, "dataset", str),
                classes=self.optional(task, "classes", list),
                split_sizes=self.optional(task, "split_sizes", dict),
                allow_overlap=self.optional(task, "allow_overlap", list),
                source=self.optional(task, "source", dict),
            ),
            protocol=self.protocol(protocol),
            scores=Scores(
                mean=self.required(scores, "scores.mean", (int, float)),
                std=self.required(scores, "scores.std", (int, float)),
                metric=self.optional(scores, "metric", str),
                per_seed=self.numbers(scores, "per_seed"),
                val_per_seed=self.numbers(scores, "val_per_seed"),
                ci95=self.numbers(scores, "ci95"),
                bootstrap_draws=self.optional(scores, "bootstrap_draws", int),
                fits=self.count(scores, "fits"),
                secondary=self.secondary(scores),
            ),
            test=TestPart(
                ids_sha256=self.optional(test, "ids_sha256", str),
                labels=self.optional(test, "labels", list),
                predictions_per_seed=self.optional(test, "predictions_per_seed", list),
                counts_per_seed=self.optional(test, "counts_per_seed", list),
            )
            if test
            else None,
            hyperparameters_per_seed=self.optional(hyperparameters, "per_seed", list),
            train_size_per_seed=self.optional(data, "train_size_per_seed", list),
            timings=self.optional(data, "timings", dict),
            versions=self.optional(data, "versions", dict),
            git_revision=self.optional(data, "git_revision", str),
            code_sha256=self.optional(data, "code_sha256", str),
            stages=self.optional(data, "stages", dict),
            created=self.optional(data, "created", str),
        )

    def protocol(self, protocol: dict[str, Any]) -> ProtocolPart:
        keys = ("view_key", "corruption", "severity", "corruption_seed", "corruption_parameters")
        corruption = None
        if any(k in protocol for k in keys):
            corruption = CorruptionPart(
                view_key=self.optional(protocol, "view_key", str),
                corruption=self.optional(protocol, "corruption", str),
                severity=self.optional(protocol, "severity", int),
                seed=self.optional(protocol, "corruption_seed", int),
                parameters=self.optional(protocol, "corruption_parameters", dict),
            )
        fraction = self.optional(protocol, "fraction", (int, float))
        shots = self.optional(protocol, "shots", int)
        try:
            Budget.of(fraction, shots)
        except ValueError as exc:  # a fraction outside (0, 1], fewer than one shot
            raise self.fail(f"protocol budget: {exc}") from None
        return ProtocolPart(
            id=self.required(protocol, "protocol.id", str),
            probe=self.required(protocol, "protocol.probe", str),
            probe_options=self.optional(protocol, "probe_options", dict),
            budget=self.optional(protocol, "budget", str),
            fraction=fraction,
            shots=shots,
            view=self.optional(protocol, "view", str) or CLEAN,
            seeds=self.optional(protocol, "seeds", list),
            seeds_requested=self.count(protocol, "seeds_requested"),
            image_store=self.optional(protocol, "image_store", list),
            corruption=corruption,
        )

    def part(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' is missing or not an object")
        return value

    def required(self, data: dict[str, Any], dotted: str, kind: type | tuple[type, ...]) -> Any:
        value = data.get(dotted.rsplit(".", 1)[-1])
        if value is None:
            raise self.fail(f"'{dotted}' is missing")
        return self._checked(value, dotted, kind)

    def optional(self, data: dict[str, Any] | None, key: str, kind: type | tuple[type, ...]):
        value = (data or {}).get(key)
        return None if value is None else self._checked(value, key, kind)

    def _checked(self, value: Any, key: str, kind: type | tuple[type, ...]) -> Any:
        # JSON has no int subtype of bool, Python does: `true` is not a score or a seed
        if isinstance(value, bool) or not isinstance(value, kind):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(f"'{key}' should be {names}, not {json.dumps(value)[:40]}")
        if isinstance(value, float) and not math.isfinite(value):
            # NaN compares False with everything: it would sort, rank and pass checks silently
            raise self.fail(f"'{key}' should be a finite number, not {value}")
        return value

    def count(self, data: dict[str, Any] | None, key: str) -> int | None:
        """An optional whole number at least 1 (fits, seeds)."""
        value = self.optional(data, key, int)
        if value is not None and value < 1:
            raise self.fail(f"'{key}' should be at least 1, not {value}")
        return value

    def secondary(self, scores: dict[str, Any]) -> dict[str, Any] | None:
        """The secondary scores: each a {mean, std, per_seed...} object, or per-class means."""
        secondary = self.optional(scores, "secondary", dict)
        for name, value in (secondary or {}).items():
            if not isinstance(value, dict):
                raise self.fail(f"'scores.secondary.{name}' should be an object")
            for key, number in value.items():
                if isinstance(number, list):
                    self.numbers(value, key)
                else:
                    self._checked(number, f"secondary.{name}.{key}", (int, float))
        return secondary

    def numbers(self, data: dict[str, Any] | None, key: str) -> list[float] | None:
        """An optional list of finite numbers (per-seed scores, an interval)."""
        values = self.optional(data, key, list)
        for i, value in enumerate(values or []):
            self._checked(value, f"{key}[{i}]", (int, float))
        return values


# -- files -------------------------------------------------------------------------------------


def protocol_id(
    probe: str, budget: Budget, view: str = CLEAN, options: Mapping[str, Any] | None = None
) -> str:
    """`us-jepa-2026`, `linear@10%`, `knn@5-shot`, `linear/gaussian-noise-s3-seed0`,
    `us-jepa-2026+max_epochs=1`: a record's protocol (probe, its options unless none changes
    the numbers, label budget unless all labels, view unless clean)."""
    out = probe + options_label(options)
    out = out if budget.is_full else f"{out}@{budget.label}"
    return out if view == CLEAN else f"{out}/{view}"


# A value written as is in a protocol id: characters safe in a file name, no `+` or `=` (they
# separate options), and a text value that cannot be read as a number or a JSON word.
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,24}$")
_PLAIN_TEXT = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_JSON_WORDS = ("true", "false", "null", "NaN", "Infinity")


def options_label(options: Mapping[str, Any] | None) -> str:
    """The part of a protocol id that names a probe variant: `""` for the default protocol (no
    option, or only options such as `device` that do not change the numbers),
    `+max_epochs=1+standardize=true` when every value is short and plain, else
    `+options-<digest>` (a list of Cs, say). Stable: keys sorted, values written as JSON."""
    chosen = {k: v for k, v in (options or {}).items() if k not in NUMBER_NEUTRAL_OPTIONS}
    if not chosen:
        return ""
    texts = {key: _plain_text(chosen[key]) for key in sorted(chosen)}
    if all(text is not None and _PLAIN_TEXT.match(key) for key, text in texts.items()):
        return "".join(f"+{key}={text}" for key, text in texts.items())
    canonical = json.dumps(chosen, sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"+options-{digest[:10]}"


def _plain_text(value: Any) -> str | None:
    """How `value` reads in a protocol id, or None when it cannot be written plainly there."""
    if isinstance(value, str):
        plain = _PLAIN_TEXT.match(value) and value not in _JSON_WORDS
    else:
        value = json.dumps(value, default=str)
        plain = isinstance(json.loads(value), (bool, int, float))
    return value if plain and _PLAIN_VALUE.match(value) else None


def record_path(results_root: Path, model: str, task: str, protocol: str) -> Path:
    return Path(results_root) / safe_name(model) / safe_name(task) / f"{safe_name(protocol)}.json"


def write_record(results_root: Path, record: ResultRecord) -> Path:
    path = record_path(results_root, record.model_name, record.task_name, record.protocol_id)
    atomic.write_json(path, record.to_dict())
    return path


def read_records(results_root: Path) -> list[ResultRecord]:
    """Every result record below `results_root` (other JSON files are skipped)."""
    root = Path(results_root)
    if not root.is_dir():
        raise UserError(f"results folder not found: {root} (run `ubench bench` or pass --results)")
    records = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read result record {path}: {exc}") from None
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            records.append(ResultRecord.from_dict(data, str(path)))
    return records


@functools.cache
def git_revision() -> str | None:
    """The checkout's commit when the package runs from a git clone (asked once)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
