"""action.yml: the inputs and outputs of README.md#inputs-and-outputs, safe steps, and the guard and Python-environment
steps run for real with bash (offline)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from sgp_action.run.inputs import INPUTS
from sgp_action.toolcache import READY_MARKER
from tests.action_env import environment_key, seed_environment

ROOT = Path(__file__).resolve().parent.parent

# README.md#inputs-and-outputs, copied by hand: the contract, not derived from the code.
PRODUCT_INPUTS = {
    "command": "auto",
    "api-key": "",
    "account-id": "",
    "base-url": "",
    "allow-insecure-http": "false",  # added for issue 11: an http:// base-url off this machine is refused without it
    "working-directory": ".",
    "manifest": "manifest.yaml",
    "environments": "",
    "environment": "",
    "image-name": "",
    "image-tag": "",
    "build-args": "",
    "platform": "",
    "build-id": "",
    "agent-id": "",  # added for issue 13: the id of an agent made elsewhere, when nothing else tells it
    "preview-label": "",
    "preview-ttl": "8h",
    "expires-at": "",
    "wait": "true",
    "build-timeout": "30m",
    "deploy-timeout": "15m",
    "poll-interval": "5s",
    "reuse-build": "true",
    "replace-previous": "true",
    "follow-symlinks": "false",
    "github-token": "",
    "comment": "auto",
    "deployment-url": "",  # added for issue 15: the link on GitHub deployments and in the comment
    "dry-run": "false",
    "debug": "false",
}
PRODUCT_OUTPUTS = [
    "result",
    "build-id",
    "build-status",
    "reused-build",
    "image-name",
    "image-tag",
    "image-url",
    "working-tree-hash",
    "deployment-id",
    "deployment-status",
    "preview-label",
    "expires-at",
    "helm-release-name",
    "namespace",
    "deleted",
    "matrix",
]


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(action: dict[str, Any]) -> list[dict[str, Any]]:
    return list(action["runs"]["steps"])


def step(action: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in steps(action) if s.get("id") == step_id)


def test_metadata(action: dict[str, Any]) -> None:
    assert action["name"] and action["description"]
    assert action["branding"]["icon"] and action["branding"]["color"]
    assert action["runs"]["using"] == "composite"


def test_inputs_are_exactly_the_product_list_with_its_defaults(action: dict[str, Any]) -> None:
    inputs = action["inputs"]
    assert list(inputs) == list(PRODUCT_INPUTS)
    for name, default in PRODUCT_INPUTS.items():
        assert str(inputs[name]["default"]) == default, name
        assert inputs[name]["description"].strip(), name
        assert inputs[name].get("required", False) is False, name  # detect and dry-run work without a key
    assert {spec.name: spec.default for spec in INPUTS} == PRODUCT_INPUTS  # the Python side agrees


def test_outputs_are_exactly_the_product_list(action: dict[str, Any]) -> None:
    outputs = action["outputs"]
    assert list(outputs) == PRODUCT_OUTPUTS
    for name, spec in outputs.items():
        assert spec["description"].strip(), name
        assert spec["value"] == "${{ steps.main.outputs." + name + " }}"


def test_no_expression_is_interpolated_into_a_script(action: dict[str, Any]) -> None:
    for s in steps(action):
        assert "${{" not in s["run"], s.get("name")
        assert s["shell"] == "bash"
        assert s["run"].startswith("set -euo pipefail\n"), s.get("name")


def test_every_input_reaches_the_main_step(action: dict[str, Any]) -> None:
    env = step(action, "main")["env"]
    for name in PRODUCT_INPUTS:
        assert env["INPUT_" + name.upper().replace("-", "_")] == "${{ inputs." + name + " }}"
    assert env["VENV_PYTHON"] == "${{ steps.python.outputs.python }}"
    inputs_env = {key for key in env if key.startswith("INPUT_")}
    assert len(inputs_env) == len(PRODUCT_INPUTS)
    assert 'exec "$VENV_PYTHON" "$GITHUB_ACTION_PATH/entrypoint.py" run' in step(action, "main")["run"]


def test_descriptions_with_double_colons_are_quoted() -> None:
    # docs/runner.md#act-in-host-mode: an unquoted `::` in a plain scalar breaks act's YAML parser.
    for line in (ROOT / "action.yml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*description:\s*(.*)$", line)
        if match and "::" in match.group(1):
            assert match.group(1)[0] in "\"'>|", line


# --- the guard and Python-environment steps, run with bash ---------------------------------------------------------


def run_step(action: dict[str, Any], index: int, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = steps(action)[index]["run"]
    base = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
        env={**base, "HOME": str(cwd), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.mark.e2e
def test_guard_accepts_this_machine(action: dict[str, Any], tmp_path: Path) -> None:
    done = run_step(action, 0, {"SGP_ACTION_OS": "Linux"}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SGP_ACTION_OS": "Windows"}, "::error title=Unsupported runner::"),
        ({"SGP_ACTION_OS": "Linux", "SGP_ACTION_PYTHON": "no-such-python3"}, "::error title=Python not found::"),
        ({"SGP_ACTION_OS": "Linux", "SGP_ACTION_PYTHON": "OLD"}, "::error title=Python too old::"),
    ],
)
def test_guard_fails_clearly(action: dict[str, Any], tmp_path: Path, env: dict[str, str], message: str) -> None:
    if env.get("SGP_ACTION_PYTHON") == "OLD":  # an interpreter that reports 3.8
        old = tmp_path / "python3.8"
        old.write_text('#!/bin/sh\ncase "$2" in *version_info*) exit 1;; *) echo 3.8.18;; esac\n')
        old.chmod(0o755)
        env = {**env, "SGP_ACTION_PYTHON": str(old)}
    done = run_step(action, 0, env, tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith(message), done.stdout
    if "too old" in message:
        assert "is 3.8.18" in done.stdout


def fake_action(tmp_path: Path, requirements: str = "# nothing to install\n") -> Path:
    """An action folder with the toolcache module and its own requirements.txt."""
    path = tmp_path / "action"
    (path / "sgp_action").mkdir(parents=True)
    shutil.copy(ROOT / "sgp_action" / "toolcache.py", path / "sgp_action" / "toolcache.py")
    (path / "sgp_action" / "__init__.py").write_text("")
    (path / "requirements.txt").write_text(requirements)
    return path


def env_for(action_path: Path, tool_cache: Path, out: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTION_PATH": str(action_path),
        "RUNNER_TOOL_CACHE": str(tool_cache),
        "RUNNER_TEMP": str(tool_cache.parent / "runner-temp"),
        "GITHUB_OUTPUT": str(out),
        **extra,
    }


@pytest.mark.e2e
def test_environment_is_created_once_then_reused(action: dict[str, Any], tmp_path: Path) -> None:
    action_path, cache = fake_action(tmp_path), tmp_path / "tool-cache"
    pip_args = {"SGP_ACTION_PIP_ARGS": "--no-index --no-cache-dir"}  # offline; also checks the extra arguments pass
    first = run_step(action, 1, env_for(action_path, cache, tmp_path / "out1", **pip_args), tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    key = environment_key(sys.executable, action_path)
    venv = cache / "sgp-action" / key
    assert first.stdout.strip() == f"Python environment: creating {venv}"
    assert outputs(tmp_path / "out1") == {"python": f"{venv}/bin/python"}
    assert (venv / READY_MARKER).is_file()
    assert [p.name for p in (cache / "sgp-action").iterdir()] == [key]  # the temporary folder is gone
    check = subprocess.run(
        [f"{venv}/bin/python", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert check.stdout.strip() == str(venv)  # the renamed environment knows where it lives
    second = run_step(action, 1, env_for(action_path, cache, tmp_path / "out2"), tmp_path)
    assert second.stdout.strip() == f"Python environment: reusing {venv}"
    assert outputs(tmp_path / "out2") == outputs(tmp_path / "out1")


def test_key_changes_with_the_requirements(tmp_path: Path) -> None:
    one = environment_key(sys.executable, fake_action(tmp_path / "a", "requests==1\n"))
    two = environment_key(sys.executable, fake_action(tmp_path / "b", "requests==2\n"))
    assert one != two and re.fullmatch(r"[0-9a-f]{16}", one)


@pytest.mark.e2e
def test_two_jobs_at_once_end_with_one_environment(action: dict[str, Any], tmp_path: Path) -> None:
    action_path, cache = fake_action(tmp_path), tmp_path / "tool-cache"
    results: list[subprocess.CompletedProcess[str]] = []

    def job(n: int) -> None:
        results.append(run_step(action, 1, env_for(action_path, cache, tmp_path / f"out{n}"), tmp_path))

    threads = [threading.Thread(target=job, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert outputs(tmp_path / "out0") == outputs(tmp_path / "out1")
    assert len(list((cache / "sgp-action").iterdir())) == 1


@pytest.mark.e2e
def test_unusable_tool_cache_falls_back_to_runner_temp_and_replaces_a_broken_leftover(
    action: dict[str, Any], tmp_path: Path
) -> None:
    action_path = fake_action(tmp_path)
    not_a_dir = tmp_path / "file-not-dir"
    not_a_dir.write_text("")
    venv = tmp_path / "runner-temp" / "sgp-action" / environment_key(sys.executable, action_path)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("broken: an interrupted job, no ready marker")
    done = run_step(action, 1, env_for(action_path, not_a_dir, tmp_path / "out"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert outputs(tmp_path / "out") == {"python": f"{venv}/bin/python"}
    assert (venv / READY_MARKER).is_file() and (venv / "pyvenv.cfg").is_file()
    assert [p.name for p in venv.parent.iterdir()] == [venv.name]


@pytest.mark.e2e
def test_a_failed_build_fails_the_step_and_leaves_nothing(action: dict[str, Any], tmp_path: Path) -> None:
    # An interpreter whose venv module dies half-way (as pip would without network): real python otherwise.
    python = tmp_path / "python3"
    python.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; echo "venv: disk full" >&2; exit 1; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    action_path, cache = fake_action(tmp_path), tmp_path / "tool-cache"
    done = run_step(action, 1, env_for(action_path, cache, tmp_path / "out", SGP_ACTION_PYTHON=str(python)), tmp_path)
    assert done.returncode != 0 and "disk full" in done.stderr
    assert list((cache / "sgp-action").iterdir()) == []
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_seeded_environment_is_reused_offline_with_the_real_requirements(
    action: dict[str, Any], tmp_path: Path
) -> None:
    cache = tmp_path / "seeded"
    venv = seed_environment(cache)
    # SGP_ACTION_TOOL_CACHE wins over RUNNER_TOOL_CACHE (act host mode forces the latter into its cache path).
    env = env_for(ROOT, tmp_path / "runner-tool-cache", tmp_path / "out", SGP_ACTION_TOOL_CACHE=str(cache))
    done = run_step(action, 1, env, tmp_path)
    assert done.stdout.strip() == f"Python environment: reusing {venv}", done.stderr
    python = outputs(tmp_path / "out")["python"]
    imports = "import requests, sseclient, yaml, requests_toolbelt"
    assert subprocess.run([python, "-c", imports], capture_output=True, check=False).returncode == 0
