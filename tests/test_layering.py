"""The stages import one way: a lower stage never imports a higher one.

The check reads every module's imports from its syntax tree (function-level imports too), so
a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

import ultrabench_eval

PACKAGE = "ultrabench_eval"
# Lowest first. `core` holds what every stage shares (errors, atomic writes, registries).
STAGES = (
    "core",
    "models",
    "data",
    "corruptions",
    "features",
    "probes",
    "results",
    "protocols",
    "report",
    "cli",
)
# The package root (its `__version__`) sits below every stage, `__main__` above them all.
TOP = len(STAGES)
ROOT = -1
# Only the registry may reach the built-in zoo, and it does so by name at run time.
ZOO = "model_zoo"


def stage_rank(module: str) -> int:
    """The rank of a dotted module name inside the package (`ultrabench_eval.data.loader`)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "__version__":
        return ROOT
    if parts[1] not in STAGES:
        return TOP
    return STAGES.index(parts[1])


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in `tree`; `from pkg import name` counts as
    `pkg.name`, which is the submodule when there is one."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward_imports(package_dir: Path) -> list[str]:
    """Every import in the package that points to a higher stage, or to the model zoo."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).with_suffix("")
        is_package = relative.name == "__init__"
        parts = relative.parts[:-1] if is_package else relative.parts
        module = ".".join(parts)
        rank = stage_rank(module)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in _imported(tree, module, is_package):
            where = f"{path.relative_to(package_dir.parent)}:{line}"
            if target.split(".")[0] == ZOO:
                problems.append(f"{where} imports {target}: only the registry finds the zoo")
            elif target.split(".")[0] == PACKAGE and stage_rank(target) > rank:
                problems.append(f"{where} imports {target}, a higher stage")
    return problems


def test_stages_import_only_downwards():
    package_dir = Path(ultrabench_eval.__file__).resolve().parent
    assert upward_imports(package_dir) == []


def test_every_subpackage_is_a_known_stage():
    package_dir = Path(ultrabench_eval.__file__).resolve().parent
    folders = {p.parent.name for p in package_dir.glob("*/__init__.py")}
    assert folders <= set(STAGES)


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("data/loader.py", "from ultrabench_eval.protocols import bench\n"),
        ("probes/base.py", "def late():\n    import ultrabench_eval.report.leaderboard\n"),
        ("core/errors.py", "from ..cli import parser\n"),
        ("models/adapter.py", "import model_zoo\n"),
    ],
)
def test_a_planted_upward_import_is_found(tmp_path, module, planted):
    package_dir = Path(ultrabench_eval.__file__).resolve().parent
    copy = tmp_path / PACKAGE
    shutil.copytree(package_dir, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = copy / module
    target.write_text(target.read_text() + "\n" + planted)
    problems = upward_imports(copy)
    assert len(problems) == 1
    assert problems[0].startswith(f"{PACKAGE}/{module}:")
