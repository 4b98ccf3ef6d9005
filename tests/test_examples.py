"""The ready-to-copy workflows under examples/ and the project's own workflows: valid for a real runner, and safe.

Validity is checked by nektos/act's own schema check (`act --validate --strict`), which runs nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB_EXAMPLES = sorted((ROOT / "examples" / "github").glob("*.yml"))
GITEA_EXAMPLES = sorted((ROOT / "examples" / "gitea").glob("*.yml"))
PROJECT_WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHORT_REF = "owner/sgp-action@v1"
FULL_REF = "https://github.com/owner/sgp-action@v1"


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, list):
        return {name: None for name in on}
    assert isinstance(on, dict)
    return on


def _action_steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if str(step.get("uses", "")).endswith("sgp-action@v1") or step.get("uses") == "./"
    ]


def test_there_are_examples_for_both_forges() -> None:
    names = {p.name for p in GITHUB_EXAMPLES}
    assert names == {"preview.yml", "deploy.yml", "cleanup.yml", "rollback.yml", "monorepo.yml"}
    assert {p.name for p in GITEA_EXAMPLES} == names


@pytest.mark.parametrize("path", GITHUB_EXAMPLES + GITEA_EXAMPLES + PROJECT_WORKFLOWS, ids=lambda p: p.name)
def test_act_accepts_the_workflow(path: Path, tmp_path: Path) -> None:
    # act rejects full-URL `uses:` (Gitea/Forgejo syntax): check the Gitea copies with the short name put back.
    text = path.read_text(encoding="utf-8").replace(FULL_REF, SHORT_REF)
    workflow = tmp_path / path.name
    workflow.write_text(text, encoding="utf-8")
    act = Path(sys.executable).parent / "act"
    cmd = [
        str(act), "--validate", "--strict", "-W", str(workflow), "-C", str(tmp_path),
        "-P", "ubuntu-latest=-self-hosted", "--env-file", "/dev/null", "--secret-file", "/dev/null",
        "--var-file", "/dev/null", "--input-file", "/dev/null", "--action-cache-path", str(tmp_path / "cache"),
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "ACT_DISABLE_VERSION_CHECK": "1"}
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_act_validation_catches_a_bad_key(tmp_path: Path) -> None:
    """The check above can fail: an unknown step key is refused."""
    text = (ROOT / "examples" / "github" / "preview.yml").read_text(encoding="utf-8").replace("with:", "withh:", 1)
    (tmp_path / "bad.yml").write_text(text, encoding="utf-8")
    act = Path(sys.executable).parent / "act"
    cmd = [str(act), "--validate", "--strict", "-W", str(tmp_path / "bad.yml"), "-C", str(tmp_path)]
    cmd += ["-P", "ubuntu-latest=-self-hosted", "--action-cache-path", str(tmp_path / "cache")]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "ACT_DISABLE_VERSION_CHECK": "1"}
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("path", "ref"), [(p, SHORT_REF) for p in GITHUB_EXAMPLES] + [(p, FULL_REF) for p in GITEA_EXAMPLES], ids=str
)
def test_examples_reference_the_action_by_the_forges_syntax(path: Path, ref: str) -> None:
    steps = _action_steps(_load(path))
    assert steps, "the workflow never uses the action"
    assert {step["uses"] for step in steps} == {ref}


@pytest.mark.parametrize("path", GITHUB_EXAMPLES + GITEA_EXAMPLES + PROJECT_WORKFLOWS, ids=str)
def test_workflows_are_least_privilege_and_fork_safe(path: Path) -> None:
    workflow = _load(path)
    assert "pull_request_target" not in _triggers(workflow)
    permissions = workflow.get("permissions")
    assert isinstance(permissions, dict), "set minimal top-level permissions"
    assert set(permissions.values()) <= {"read", "write"}
    writable = {scope for scope, level in permissions.items() if level == "write"}
    assert writable <= {"pull-requests", "deployments"}  # the sticky comment; GitHub deployments of previews
    for step in _action_steps(workflow):
        for value in (step.get("with") or {}).values():
            # Credentials come from secrets, never written into the workflow (the self-test's emulator keys aside).
            assert "SGP_API_KEY" not in str(value) or "secrets." in str(value)


@pytest.mark.parametrize("forge", ["github", "gitea"])
def test_preview_example_tears_down_on_close_one_run_per_pr(forge: str) -> None:
    workflow = _load(ROOT / "examples" / forge / "preview.yml")
    types = _triggers(workflow)["pull_request"]["types"]
    assert set(types) == {"opened", "synchronize", "reopened", "closed"}
    assert "github.event.pull_request.number" in workflow["concurrency"]["group"]
    for step in _action_steps(workflow):
        assert step["with"].get("command", "auto") == "auto"
        assert step["with"]["api-key"] == "${{ secrets.SGP_API_KEY }}"


@pytest.mark.parametrize("forge", ["github", "gitea"])
def test_rollback_and_monorepo_examples(forge: str) -> None:
    rollback = _load(ROOT / "examples" / forge / "rollback.yml")
    dispatch_inputs = _triggers(rollback)["workflow_dispatch"]["inputs"]
    assert dispatch_inputs["build-id"]["required"] is True
    (step,) = _action_steps(rollback)
    assert step["with"]["build-id"] == "${{ inputs.build-id }}"
    monorepo = _load(ROOT / "examples" / forge / "monorepo.yml")
    detect_steps = [s for s in monorepo["jobs"]["detect"]["steps"] if s.get("with", {}).get("command") == "detect"]
    assert len(detect_steps) == 1
    matrix = monorepo["jobs"]["deploy"]["strategy"]["matrix"]
    assert matrix["include"] == "${{ fromJSON(needs.detect.outputs.matrix) }}"


def test_cleanup_example_runs_on_a_schedule() -> None:
    for forge in ("github", "gitea"):
        workflow = _load(ROOT / "examples" / forge / "cleanup.yml")
        assert "schedule" in _triggers(workflow)
        (step,) = _action_steps(workflow)
        assert step["with"]["command"] == "cleanup"


def _action_spec() -> dict[Any, Any]:
    return _load(ROOT / "action.yml")


@pytest.mark.parametrize("path", GITHUB_EXAMPLES + GITEA_EXAMPLES + PROJECT_WORKFLOWS, ids=str)
def test_workflows_use_only_inputs_and_outputs_the_action_declares(path: Path) -> None:
    spec = _action_spec()
    workflow = _load(path)
    for step in _action_steps(workflow):
        unknown = set(step.get("with") or {}) - set(spec["inputs"])
        assert not unknown, f"{path.name}: inputs not in action.yml: {unknown}"
    ids = {step["id"] for step in _action_steps(workflow) if "id" in step}
    text = path.read_text(encoding="utf-8")
    for step_id in ids:
        used = set(re.findall(rf"steps\.{re.escape(step_id)}\.outputs\.([A-Za-z0-9_-]+)", text))
        unknown = used - set(spec["outputs"])
        assert not unknown, f"{path.name}: outputs not in action.yml: {unknown}"


def test_readme_documents_the_action_for_both_forges() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"uses: {SHORT_REF}" in readme
    assert f"uses: {FULL_REF}" in readme
    for section in ("## Usage on GitHub", "## Usage on Gitea and Forgejo", "## Fork pull requests"):
        assert section in readme
    for name in ("preview", "deploy", "cleanup", "rollback", "monorepo"):
        assert f"examples/github/{name}.yml" in readme
