"""argparse stays in `ultrabench_eval/cli/`: the library takes typed arguments and configs."""

from __future__ import annotations

import ast
from pathlib import Path

import ultrabench_eval

PACKAGE_DIR = Path(ultrabench_eval.__file__).resolve().parent
# Not argument handling: training checkpoints pickle their argparse.Namespace, and torch.load
# must be told the class is safe to rebuild.
ALLOWED = {"models/weights.py"}


def argparse_users(package_dir: Path) -> list[str]:
    """Modules outside `cli/` that import argparse or name `argparse.Namespace`."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir)
        if relative.parts[0] == "cli" or relative.as_posix() in ALLOWED:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            imports = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            named = isinstance(node, ast.Name) and node.id == "argparse"
            if named or any(name.split(".")[0] == "argparse" for name in imports):
                found.append(f"{relative.as_posix()}:{node.lineno}")
                break
    return found


def test_no_library_module_sees_argparse():
    assert argparse_users(PACKAGE_DIR) == []


def test_a_planted_argparse_import_is_found(tmp_path):
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "parser.py").write_text("import argparse\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "task_check.py").write_text("def run(args: argparse.Namespace): ...\n")
    assert argparse_users(tmp_path) == ["data/task_check.py:1"]
