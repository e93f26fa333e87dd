"""ruff, mypy and lint-imports (configured in pyproject.toml) are part of the test command, so CI
enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.solo  # a tool that takes the machine: alone (tests/solo.py)

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    """The import contracts in pyproject.toml ([tool.importlinter]): the layers and the forbidden imports."""
    # import-linter has no `python -m` entry; its script is installed next to the interpreter. No
    # cache: the graph is small, and the cache would leave a folder in the repository.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


PACKAGES = ("api", "service", "sessions", "camera", "mqtt_control", "rigcore", "rigcli", "simulator")


def import_cycles() -> list[tuple[str, str]]:
    """Each import ``a -> b`` between the project's modules where ``b`` leads back to ``a`` (directly
    or through others). Every import counts: at module level, inside a function, under TYPE_CHECKING."""
    import grimp

    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    return [
        (importer, imported)
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if importer == imported or graph.chain_exists(importer=imported, imported=importer)
    ]


def test_no_import_cycles() -> None:
    """No module imports, directly or through others, a module that imports it back."""
    assert import_cycles() == []


# The sizes the structure keeps to (outside tests): a file is split by responsibility before it grows
# past MAX_FILE_LINES; a class with more than MAX_METHODS methods is doing several jobs.
MAX_FILE_LINES = 600
MAX_METHODS = 30
SOURCE_DIRS = (*PACKAGES, "bench")


def project_sources() -> list[Path]:
    files = [ROOT / "application.py"]
    for name in SOURCE_DIRS:
        files += sorted((ROOT / name).rglob("*.py"))
    return files


def test_no_file_over_the_line_limit() -> None:
    long = {
        str(f.relative_to(ROOT)): n
        for f in project_sources()
        if (n := len(f.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}, f"split these by responsibility (at most {MAX_FILE_LINES} lines)"


def test_no_class_over_the_method_limit() -> None:
    import ast

    big = {}
    for file in project_sources():
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                if len(methods) > MAX_METHODS:
                    big[f"{file.relative_to(ROOT)}:{node.name}"] = len(methods)
    assert big == {}, f"classes over {MAX_METHODS} methods"
