"""The suite's own rules: bare `pytest` collects, test modules import only helper modules, e2e tests are marked."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

TESTS = ROOT / "tests"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda path: path.name)
def test_no_module_imports_a_test_module_or_the_conftest(path: Path) -> None:
    """Shared code lives in helper modules: importing a test file runs its tests' module code twice over."""
    wrong = {
        name
        for name in _imported_modules(path)
        if name.removeprefix("tests.").startswith("test_") or name.removeprefix("tests.") == "conftest"
    }
    assert not wrong, f"{path.name} imports {sorted(wrong)}: move what it needs into a helper module"


def test_every_act_module_is_marked_e2e() -> None:
    for path in sorted(TESTS.glob("test_e2e_*.py")):
        assert "\npytestmark = pytest.mark.e2e\n" in path.read_text(encoding="utf-8"), path.name


def test_bare_pytest_collects_a_module_that_imports_helpers() -> None:
    """The `pytest` script, unlike `python -m pytest`, puts no current folder on sys.path: `pythonpath` does."""
    script = Path(sys.executable).parent / "pytest"
    if not script.exists():
        pytest.skip("no pytest script next to this interpreter")
    done = subprocess.run(
        [str(script), "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/test_emulator_cli.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
