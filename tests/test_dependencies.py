"""pyproject.toml declares what the code imports, and nothing it does not: the runtime
dependencies for the package and the adapters, the `bench` extra for the speed benchmarks."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
OWN = {"ultrabench_eval", "model_zoo", "benchmarks"}
# declared, used, but imported by name at run time (no import statement to find)
IMPORTED_BY_NAME = {"ultrabench": "ultrabench_eval/data/prepare/ultrabench.py"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    names = {normalise(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    return names - {"ultrabench-eval"}  # the extras that include other extras


def imported(*folders: str) -> dict[str, set[str]]:
    """Top-level module -> the distributions that provide it, for every third-party import
    under `folders`, function-level imports included."""
    distributions = packages_distributions()
    out: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in OWN or top == "__future__":
                        continue
                    out[top] = {normalise(d) for d in distributions.get(top, [top])}
    return out


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_runtime_imports_are_declared_and_declared_dependencies_are_imported():
    runtime = declared(project()["dependencies"])
    used = imported("ultrabench_eval", "model_zoo")
    undeclared = sorted(module for module, dists in used.items() if not dists & runtime)
    assert undeclared == [], "imported at run time but not in [project] dependencies"
    provided = set().union(*used.values())
    unused = runtime - provided - set(IMPORTED_BY_NAME)
    assert unused == set(), "declared but imported nowhere in ultrabench_eval/ or model_zoo/"


def test_benchmark_libraries_stay_out_of_the_runtime():
    extras = project()["optional-dependencies"]
    runtime = declared(project()["dependencies"])
    bench = declared(extras["bench"])
    assert bench == {"albumentations", "usaugment"} and not bench & runtime
    assert not bench & set().union(*imported("ultrabench_eval", "model_zoo").values())
    used = imported("benchmarks")
    assert all(dists & (bench | runtime) for dists in used.values())
    assert bench <= set().union(*used.values())  # each one is what a benchmark compares with
    # the tests compare the corruptions with these libraries too: `dev` brings them
    assert "ultrabench-eval[bench]" in extras["dev"]


def test_the_name_imported_by_name_is_still_imported_that_way():
    for name, path in IMPORTED_BY_NAME.items():
        assert f'import_module(f"{name}.' in (ROOT / path).read_text()
