"""The demo: its GITHUB_OUTPUT reader, the repository and environment it prepares, and the whole run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sgp_action.demo import (
    AGENT_FOLDER,
    PR_NUMBER,
    demo_environment,
    parse_output_file,
    prepare_repository,
    pull_request_event,
    run_demo,
    sample_agent_dir,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("a=1\n", {"a": "1"}),
        ("a=x=y\n", {"a": "x=y"}),
        ("a<<EOF\nline\nEOF\n", {"a": "line"}),
        ("a<<D1\none\ntwo\nD1\nb=2\n", {"a": "one\ntwo", "b": "2"}),
        ("a<<D\n\nD\n", {"a": ""}),
        ("a<<D\nx=1\nD\n", {"a": "x=1"}),
        ("a=b<<c\n", {"a": "b<<c"}),  # `=` comes first: a one-line value
        ("a<<b=c\nv\nb=c\n", {"a": "v"}),  # `<<` comes first: the delimiter is `b=c`
        ("a=1\na=2\n", {"a": "2"}),
    ],
)
def test_parse_output_file(text: str, expected: dict[str, str]) -> None:
    assert parse_output_file(text) == expected


@pytest.mark.parametrize("text", ["a<<EOF\nnever closed\n", "no separator\n"])
def test_parse_output_file_rejects_broken_files(text: str) -> None:
    with pytest.raises(ValueError):
        parse_output_file(text)


def test_sample_agent_is_complete() -> None:
    agent = sample_agent_dir()
    for name in ("manifest.yaml", "environments.yaml", "Dockerfile", ".dockerignore", "requirements.txt"):
        assert (agent / name).is_file(), name
    assert (agent / "project" / "acp.py").is_file()
    assert "RUN echo" in (agent / "Dockerfile").read_text(encoding="utf-8")


def test_prepare_repository_commits_a_copy_of_the_sample_agent(tmp_path: Path) -> None:
    repo, head = prepare_repository(tmp_path)
    assert (repo / AGENT_FOLDER / "manifest.yaml").read_bytes() == (sample_agent_dir() / "manifest.yaml").read_bytes()
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    assert rev.stdout.strip() == head
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True)
    assert status.stdout == ""


def test_event_names_the_head_commit() -> None:
    event = pull_request_event("ab" * 20)
    assert event["action"] == "opened"
    assert event["number"] == PR_NUMBER
    pull = event["pull_request"]
    assert isinstance(pull, dict)
    assert pull["head"]["sha"] == "ab" * 20
    assert pull["head"]["repo"]["fork"] is False


def test_environment_drops_the_callers_ci_variables(tmp_path: Path) -> None:
    outer = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "INPUT_API_KEY": "outer-key",
        "INPUT_DRY_RUN": "true",
        "GITHUB_OUTPUT": "/outer/output",
        "GITHUB_TOKEN": "outer-token",
        "GITEA_OUTPUT": "/outer/gitea",
        "RUNNER_DEBUG": "1",
        "SGP_CLIENT_BASE_URL": "https://elsewhere.invalid",
    }
    env = demo_environment(
        outer,
        workdir=tmp_path,
        repo=tmp_path / "repo",
        event_path=tmp_path / "event.json",
        url="http://127.0.0.1:1",
        api_key="demo-key",
        account_id="demo-account",
    )
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root"
    assert env["INPUT_API_KEY"] == "demo-key"
    assert env["INPUT_BASE_URL"] == "http://127.0.0.1:1"
    assert env["GITHUB_OUTPUT"] == str(tmp_path / "github_output")
    assert env["GITHUB_EVENT_NAME"] == "pull_request"
    for gone in ("INPUT_DRY_RUN", "GITHUB_TOKEN", "GITEA_OUTPUT", "RUNNER_DEBUG", "SGP_CLIENT_BASE_URL"):
        assert gone not in env, gone
    assert json.dumps(env).count("outer") == 0


@pytest.mark.e2e
def test_run_demo_deploys_a_healthy_preview_of_the_sample_agent(tmp_path: Path) -> None:
    log_path = tmp_path / "demo.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        result = run_demo(stdout=log_file, build_seconds=0.3, deploy_seconds=0.3, workdir=tmp_path / "work")
    log = log_path.read_text(encoding="utf-8")
    assert result.returncode == 0, log
    assert result.outputs["result"] == "success"
    assert result.outputs["deployment-status"] == "healthy"
    assert result.outputs["preview-label"] == f"pr-{PR_NUMBER}"
    assert result.outputs["image-tag"] == result.head_sha[:7]
    assert "sample-agent: image ready" in log  # the Dockerfile's RUN echo, as the build log shows it
    assert result.outputs["deployment-id"] in result.summary
    (build,) = result.state["builds"]
    assert build["source_commit"] == result.head_sha
    (deployment,) = result.state["deployments"]
    assert deployment["preview_label"] == f"pr-{PR_NUMBER}"


@pytest.mark.e2e
def test_demo_command_prints_outputs_and_summary() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sgp_action", "demo"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "== step outputs (exit code 0)" in out
    assert "deployment-status  healthy" in out
    assert "== job summary" in out
    assert f"`pr-{PR_NUMBER}`" in out
    assert "kept " not in out
    next_steps = out.split("== where to go next\n", 1)[1]  # the demo ends by saying where to go next
    assert "examples/github/" in next_steps and "sgp-action doctor" in next_steps
    assert "Trying it without credentials" in next_steps
