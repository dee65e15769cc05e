"""Published tables: scores from papers, kept as CSV under `results/published/` with their source,
and the comparison of our result records with them.

A table is two files side by side:

- `<name>.csv`: `#` lines (the source, first), then `model,task,mean,std` rows with the names
  the paper uses;
- `<name>.yaml`: a title, the protocol id of our records that correspond to it, and the
  explicit mapping of the paper's model and task names onto ours (`USFM` -> `usfm`,
  `FATTY_LIVER` -> `fatty-liver`). Every name of the CSV must be mapped.

Adding a table (EchoJEPA, RadJEPA, ...) is adding these two files; no code changes.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from tabulate import tabulate

from ultrabench_eval.core.config import PACKAGE_DIR
from ultrabench_eval.core.errors import UserError
from ultrabench_eval.results.record import ResultRecord, Scores, score_text

FORMATS = ("markdown", "csv")


def published_dir() -> Path:
    """`results/published/` of the checkout this package runs from; in an installed wheel, the
    copy packed beside the package as `published_tables/`."""
    package = PACKAGE_DIR
    checkout = package.parent / "results" / "published"
    return checkout if checkout.is_dir() else package / "published_tables"


def available(folder: Path | None = None) -> list[str]:
    folder = folder or published_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


@dataclass(frozen=True)
class PublishedTable:
    name: str
    title: str
    source: str
    protocol: str  # the id of our records that the published numbers correspond to
    models: dict[str, str]  # published name -> ours
    tasks: dict[str, str]
    cells: dict[tuple[str, str], tuple[float, float]]  # (published model, task) -> (mean, std)


def load(name: str, folder: Path | None = None) -> PublishedTable:
    """A published table by name (`us-jepa-2026`) or by the path of its `.yaml` or `.csv`."""
    given = Path(name)
    if given.suffix in (".yaml", ".csv") and given.exists():
        spec_path = given.with_suffix(".yaml")
    else:
        spec_path = (folder or published_dir()) / f"{name}.yaml"
    if not spec_path.is_file():
        names = ", ".join(available(folder)) or "none"
        raise UserError(f"no published table '{name}' (looked for {spec_path}; available: {names})")
    try:
        spec = yaml.safe_load(spec_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read published-table description {spec_path}: {exc}") from None
    if not isinstance(spec, dict):
        raise UserError(f"{spec_path} must be a mapping with table, protocol, models, tasks")
    missing = [k for k in ("table", "protocol", "models", "tasks") if not spec.get(k)]
    if missing:
        raise UserError(f"{spec_path} lacks {', '.join(missing)}: add them (see us-jepa-2026.yaml)")
    csv_path = spec_path.parent / spec["table"]
    source, cells = _read_csv(csv_path)
    models = {str(k): str(v) for k, v in spec["models"].items()}
    tasks = {str(k): str(v) for k, v in spec["tasks"].items()}
    unmapped = sorted({m for m, _ in cells} - set(models)) + sorted(
        {t for _, t in cells} - set(tasks)
    )
    if unmapped:
        raise UserError(
            f"{csv_path} uses names that {spec_path.name} does not map: {', '.join(unmapped)} "
            "(add them under models: or tasks:)"
        )
    for kind, mapping in (("model", models), ("task", tasks)):
        ours = list(mapping.values())
        twice = sorted({n for n in ours if ours.count(n) > 1})
        if twice:
            raise UserError(f"{spec_path} maps two published {kind}s onto {', '.join(twice)}")
    return PublishedTable(
        name=spec_path.stem,
        title=str(spec.get("title", spec_path.stem)),
        source=source,
        protocol=str(spec["protocol"]),
        models=models,
        tasks=tasks,
        cells=cells,
    )


def _read_csv(path: Path) -> tuple[str, dict[tuple[str, str], tuple[float, float]]]:
    """(source: the `#` lines, cells) of a published CSV."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read published table {path}: {exc}") from None
    source = " ".join(line.lstrip("#").strip() for line in lines if line.startswith("#"))
    if not source:
        raise UserError(f"{path}: no source line: start the file with '# <paper, table, link>'")
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and line[0] != "#"]
    rows = list(csv.reader(line for _, line in numbered))
    if not rows or [c.strip() for c in rows[0]] != ["model", "task", "mean", "std"]:
        raise UserError(f"{path}: the header must be 'model,task,mean,std'")
    cells: dict[tuple[str, str], tuple[float, float]] = {}
    for (number, _), row in zip(numbered[1:], rows[1:], strict=True):
        try:
            model, task, mean, std = (c.strip() for c in row)
            cell = (float(mean), float(std))
        except ValueError:
            raise UserError(
                f"{path}:{number}: expected model,task,mean,std with numbers, got {row}"
            ) from None
        if (model, task) in cells:
            raise UserError(f"{path}:{number}: {model} on {task} appears twice")
        cells[(model, task)] = cell
    return source, cells


@dataclass(frozen=True)
class Comparison:
    published_model: str
    published_task: str
    model: str
    task: str
    published_mean: float
    published_std: float
    mean: float | None  # ours; None when we have no record for the cell
    std: float | None  # None also for one fit, which has no spread
    fits: int | None = None  # distinct probe fits behind our score

    @property
    def difference(self) -> float | None:
        """Ours minus published, in points of macro-F1 (x100)."""
        return None if self.mean is None else self.mean - self.published_mean

    @property
    def difference_in_std(self) -> float | None:
        """The difference in units of the published std; None when that std is 0."""
        if self.difference is None or self.published_std == 0:
            return None
        return self.difference / self.published_std


def compare(
    table: PublishedTable, records: list[ResultRecord], protocol: str | None = None
) -> list[Comparison]:
    """One comparison per published cell, in the table's order; `protocol` overrides the
    table's own (for instance `linear`, to set another probe beside the paper's)."""
    wanted = protocol or table.protocol
    ours: dict[tuple[str, str], Scores] = {}
    for record in records:
        if record.protocol_id == wanted and record.is_clean:
            ours[(record.model_name, record.task_name)] = record.scores
    out = []
    for (model, task), (mean, std) in table.cells.items():
        key = (table.models[model], table.tasks[task])
        scores = ours.get(key)
        out.append(
            Comparison(
                model,
                task,
                *key,
                mean,
                std,
                None if scores is None else float(scores.mean),
                None if scores is None or scores.spread is None else float(scores.spread),
                None if scores is None else scores.fit_count,
            )
        )
    return out


COLUMNS = ("model", "task", "ours", "published", "difference", "difference / published std")


def display_row(c: Comparison) -> list[str]:
    """A comparison as the table shows it (the columns of COLUMNS)."""
    if c.difference is None:
        difference = in_std = ""
    else:
        difference = f"{c.difference:+.1f}"
        in_std = (
            "n/a (published std 0)"
            if c.difference_in_std is None
            else f"{c.difference_in_std:+.2f}"
        )
    return [
        f"{c.model} ({c.published_model})",
        f"{c.task} ({c.published_task})",
        "not run" if c.mean is None else score_text(c.mean, c.std, c.fits),
        f"{c.published_mean:.1f} ± {c.published_std:.1f}",
        difference,
        in_std,
    ]


def summary(comparisons: list[Comparison]) -> str:
    """How many published cells we have, and how far we are from them on average."""
    diffs = [c.difference for c in comparisons if c.difference is not None]
    text = f"{len(diffs)} of {len(comparisons)} published cells run"
    if diffs:
        text += (
            f"; mean difference {sum(diffs) / len(diffs):+.2f}, "
            f"mean |difference| {sum(abs(d) for d in diffs) / len(diffs):.2f} points"
        )
    return text


def render(
    table: PublishedTable, comparisons: list[Comparison], fmt: str = "markdown", protocol: str = ""
) -> str:
    if fmt == "csv":
        return _to_csv(comparisons)
    heading = (
        f"### ours ({protocol or table.protocol}) vs {table.title}: test macro-F1 (x100), "
        "mean ± std over seeds"
    )
    grid = tabulate(
        [display_row(c) for c in comparisons],
        headers=COLUMNS,
        tablefmt="github",
        disable_numparse=True,
    )
    return f"{heading}\n\nsource: {table.source}\n\n{grid}\n\n{summary(comparisons)}\n"


def _to_csv(comparisons: list[Comparison]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "published_model",
            "published_task",
            "model",
            "task",
            "mean",
            "std",
            "published_mean",
            "published_std",
            "difference",
            "difference_in_std",
            "fits",
        ]
    )
    for c in comparisons:
        writer.writerow(
            [
                c.published_model,
                c.published_task,
                c.model,
                c.task,
                _num(c.mean),
                _num(c.std),
                _num(c.published_mean),
                _num(c.published_std),
                _num(c.difference),
                _num(c.difference_in_std),
                "" if c.fits is None else str(c.fits),
            ]
        )
    return buffer.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6g}"
