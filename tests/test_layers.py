"""The import graph of sgp_action/ follows the layers of docs/architecture.md#layers, with no circle.

Every import statement counts, wherever it is: at the top, inside a function, under `if TYPE_CHECKING:`. Each
module is read with `ast`, never imported, so a violation shows even in code that never runs here.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sgp_action"

#: Layer -> the layers its modules may import (besides their own). `None`: anything.
BASE = "base"
RULES: dict[str, frozenset[str] | None] = {
    BASE: frozenset(),
    "standalone": frozenset(),
    "api": frozenset({BASE}),
    "packaging": frozenset({BASE}),
    "ci": frozenset({BASE, "api"}),
    "run": frozenset({BASE, "api", "packaging", "ci"}),
    "emulator": frozenset({BASE}),
    "top": None,
}
#: Modules outside the layer packages.
TOP_LEVEL = {
    "sgp_action": BASE,
    "sgp_action.errors": BASE,
    "sgp_action.durations": BASE,
    "sgp_action.toolcache": "standalone",  # action.yml runs it before the dependencies exist
    "sgp_action.cli": "top",
    "sgp_action.__main__": "top",
    "sgp_action.demo": "top",
}
#: The one HTTP stack, and where it may be used: the SGP API and the forge's own REST client.
HTTP_LIBRARIES = ("requests", "urllib3")
HTTP_ALLOWED = ("sgp_action.api", "sgp_action.ci.forge")
#: The only writer of workflow commands.
COMMAND_WRITER = "sgp_action.ci.runner"
_WORKFLOW_COMMAND = re.compile(r"^::[A-Za-z][\w-]*")
#: Layers that make up the action itself: none of them may touch the emulator.
ACTION_LAYERS = ("api", "packaging", "ci", "run")


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """`sgp_action/run/state.py` -> `sgp_action.run.state`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The layer a module of ours belongs to."""
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in RULES:
        return parts[1]
    if len(parts) >= 2 and parts[1] == "commands":
        return "top"
    raise AssertionError(f"{module} belongs to no layer: add it to TOP_LEVEL or move it into a layer package")


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int, list[str]]]:
    """(imported module, line, names) for every import statement at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno, [alias.name for alias in node.names]


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, int]]]]:
    """Our modules' edges (module -> {imported module of ours: line}) and every external import (name, line)."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    edges: dict[str, dict[str, int]] = {name: {} for name in files}
    external: dict[str, list[tuple[str, int]]] = {name: [] for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, line, names in _imports(tree, name, path.name == "__init__.py"):
            if target != root.name and not target.startswith(root.name + "."):
                external[name].append((target, line))
                continue
            # `from sgp_action.run import doctor` imports the module sgp_action.run.doctor.
            found = [f"{target}.{item}" for item in names if f"{target}.{item}" in files]
            for imported in found or [target]:
                if imported != name:
                    edges[name].setdefault(imported, line)
    return edges, external


def find_cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def layer_violations(edges: dict[str, dict[str, int]]) -> list[str]:
    """Each import a layer may not make, as `module:line imports target (layer a may import only ...)`."""
    found = []
    for module, targets in sorted(edges.items()):
        mine = layer_of(module)
        allowed = RULES[mine]
        if allowed is None:
            continue
        for target, line in sorted(targets.items()):
            theirs = layer_of(target)
            if theirs != mine and theirs not in allowed:
                may = ", ".join(sorted(allowed)) or "nothing of ours"
                found.append(f"{module}:{line} imports {target} ({mine} may import only: {may})")
    return found


def command_literals(root: Path = PACKAGE) -> list[str]:
    """String literals that start a workflow command (`::error`, `::group`, ...), outside the runner module."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        if module == COMMAND_WRITER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _WORKFLOW_COMMAND.match(node.value):
                found.append(f"{module}:{node.lineno} {node.value[:40]!r}")
    return found


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, int]]]]:
    return import_graph()


def test_no_import_circle(graph: tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, int]]]]) -> None:
    edges, _ = graph
    cycle = find_cycle(edges)
    assert cycle is None, (
        "import circle (counting function-level and TYPE_CHECKING imports): "
        + " -> ".join(f"{a} (line {edges[a][b]})" for a, b in itertools.pairwise(cycle))
        + f" -> {cycle[-1]}"
    )


def test_every_layer_imports_only_the_layers_below_it(
    graph: tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, int]]]],
) -> None:
    violations = layer_violations(graph[0])
    assert not violations, "imports against docs/architecture.md#layers:\n" + "\n".join(violations)


def test_the_action_never_imports_the_emulator(
    graph: tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, int]]]],
) -> None:
    edges, _ = graph
    found = [
        f"{module}:{line} imports {target}"
        for module, targets in sorted(edges.items())
        if layer_of(module) in ACTION_LAYERS
        for target, line in sorted(targets.items())
        if layer_of(target) == "emulator"
    ]
    assert not found, "the action must never import the emulator:\n" + "\n".join(found)


def test_http_libraries_only_in_the_api_and_the_forge_client(
    graph: tuple[dict[str, dict[str, int]], dict[str, list[tuple[str, int]]]],
) -> None:
    _, external = graph
    found = [
        f"{module}:{line} imports {target}"
        for module, imports in sorted(external.items())
        if not module.startswith(HTTP_ALLOWED)
        for target, line in imports
        if target.split(".")[0] in HTTP_LIBRARIES
    ]
    assert not found, "HTTP goes through sgp_action.api (SGP) or sgp_action.ci.forge (the forge):\n" + "\n".join(found)


def test_only_the_runner_module_writes_workflow_commands() -> None:
    found = command_literals()
    assert not found, f"workflow commands are written by {COMMAND_WRITER} only:\n" + "\n".join(found)


def test_the_checks_catch_a_planted_violation(tmp_path: Path) -> None:
    """The test above would pass on an empty graph too: show that each check fires on a real offence."""
    package = tmp_path / "sgp_action"
    for folder in ("api", "ci", "run", "emulator"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "api" / "client.py").write_text("def f():\n    from sgp_action.run import state\n")
    (package / "run" / "state.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sgp_action.api.client import f\n"
    )
    (package / "ci" / "event.py").write_text("import requests\nfrom sgp_action.emulator import x\nX = '::error::x'\n")
    (package / "emulator" / "x.py").write_text("")
    edges, external = import_graph(package)
    assert find_cycle(edges) == ["sgp_action.api.client", "sgp_action.run.state", "sgp_action.api.client"]
    assert layer_violations(edges) == [
        "sgp_action.api.client:2 imports sgp_action.run.state (api may import only: base)",
        "sgp_action.ci.event:2 imports sgp_action.emulator.x (ci may import only: api, base)",
    ]
    assert ("requests", 1) in external["sgp_action.ci.event"]
    assert command_literals(package) == ["sgp_action.ci.event:3 '::error::x'"]
