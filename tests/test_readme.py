"""The README's quickstart is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = "python -m pytest -q"


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_quickstart_has_exactly_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert "sgp_action demo" in commands[0]
    assert commands[1].endswith(TEST_COMMAND)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(TEST_COMMAND)}$", ci, flags=re.M)


def _readme_table(header: str) -> dict[str, list[str]]:
    """Rows of the README table whose header line starts with `| <header> |`, keyed by the backquoted name."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Inputs and outputs", 1)[1]
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in section.splitlines():
        if line.startswith(f"| {header} |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if in_table and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("`")] = [cell.strip("`").strip() for cell in cells[1:]]
    return rows


def test_readme_tables_equal_action_yml() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    inputs = _readme_table("input")
    assert list(inputs) == list(action["inputs"])
    for name, spec in action["inputs"].items():
        default, description = inputs[name]
        assert default == str(spec.get("default", "")), name
        assert " ".join(description.split()) == " ".join(str(spec["description"]).split()), name
    outputs = _readme_table("output")
    assert list(outputs) == list(action["outputs"])
    for name, spec in action["outputs"].items():
        assert " ".join(outputs[name][0].split()) == " ".join(str(spec["description"]).split()), name
