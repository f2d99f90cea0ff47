"""The shape of the code: layers without cycles (import-linter's contracts in pyproject.toml),
modules small enough to read in one sitting, and a library that never imports its tools."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gracekit

SOURCE = Path(gracekit.__file__).parent
ROOT = SOURCE.parent.parent
MAX_LINES = 300
#: Modules still over the limit, each with the work that splits it. Empty it as they shrink.
OVER_LIMIT: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_no_module_is_over_300_lines() -> None:
    too_long = {}
    for path in _modules():
        name = path.relative_to(SOURCE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and name not in OVER_LIMIT:
            too_long[name] = lines
    assert not too_long, f"split these modules (at most {MAX_LINES} lines each): {too_long}"


def test_the_line_count_sees_every_module() -> None:
    names = {path.relative_to(SOURCE).as_posix() for path in _modules()}
    assert {"lifecycle.py", "drain/middleware.py", "probes/endpoints.py"} <= names
    assert set(OVER_LIMIT) <= names, "a module listed as over the limit is gone: drop it"


def test_the_lifecycle_is_a_small_facade() -> None:
    assert len((SOURCE / "lifecycle.py").read_text().splitlines()) < 250


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("import-linter is not installed (the dev extra has it)")
    return found


def test_import_layers_hold() -> None:
    # Also catches a cycle through a TYPE_CHECKING import: import-linter counts those too.
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _layers_contract() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return dict(layers)


def test_the_docs_draw_the_layers_of_the_contract() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    block = page.split("```text\n", 1)[1].split("```", 1)[0]
    drawn = [sorted(line.split(None, 1)[1].split(", ")) for line in block.splitlines()]
    contract = [
        sorted(name.strip() for name in layer.replace("|", ":").split(":"))
        for layer in _layers_contract()["layers"]
    ]
    assert drawn == contract


def test_packages_split_across_layers_list_every_module() -> None:
    layers = _layers_contract()
    listed = {
        name.strip() for layer in layers["layers"] for name in layer.replace("|", ":").split(":")
    }
    for package in layers["exhaustive_ignores"]:
        modules = {
            f"{package}.{path.stem}"
            for path in (SOURCE / package).glob("*.py")
            if path.name != "__init__.py"
        }
        assert modules, package
        assert modules <= listed, f"put these in a layer: {sorted(modules - listed)}"


def test_the_library_never_imports_its_tools() -> None:
    code = (
        "import sys, gracekit, gracekit.checks, gracekit.deadlines, gracekit.drain, "
        "gracekit.events, gracekit.probes, gracekit.server.serve, gracekit.server.gunicorn; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['gracekit', 'cli'], ['gracekit', 'kubernetes'], ['gracekit', 'rollout'])))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_environment_is_read_in_one_module() -> None:
    # Every GRACEKIT_* variable the library reads is named in _settings.py and nowhere else
    # (the tools may set them for the processes they start).
    tools = ("cli.py", "kubernetes/", "rollout/")
    named: dict[str, set[str]] = {}
    for path in _modules():
        name = path.relative_to(SOURCE).as_posix()
        if name.startswith(tools):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and re.fullmatch(r"GRACEKIT_[A-Z_]+", value):
                named.setdefault(value, set()).add(name)
    assert named, "no variable found: the scan is broken"
    assert {module for modules in named.values() for module in modules} == {"_settings.py"}
