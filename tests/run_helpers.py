"""A consumer repository and a runner-like environment for full runs of `sgp-action run` against the emulator."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from sgp_action.ci.event import load_event
from sgp_action.ci.runner import Runner
from sgp_action.demo import AGENT_FOLDER, demo_environment, parse_output_file, prepare_repository, run_git
from sgp_action.run.forks import skip_fork_pull_request
from sgp_action.run.pipeline import run_pipeline
from sgp_action.run.settings import load_settings
from tests.support import ROOT, EmulatorHandle

HAS_GIT = shutil.which("git") is not None


@dataclass
class Run:
    """What one run produced."""

    exit_code: int
    result: str
    outputs: dict[str, str]
    log: str
    summary: str


class Workspace:
    """A consumer repository holding the sample agent, an event payload and the runner's files."""

    def __init__(self, tmp_path: Path, emulator: EmulatorHandle) -> None:
        self.dir = tmp_path
        self.emulator = emulator
        self.repo, self.head_sha = prepare_repository(tmp_path)
        self.event_path = tmp_path / "event.json"

    def environ(self, event_name: str, payload: dict[str, Any], **inputs: str) -> dict[str, str]:
        self.event_path.write_text(json.dumps(payload), encoding="utf-8")
        for name in ("github_output", "step_summary.md"):
            (self.dir / name).write_text("", encoding="utf-8")
        env = demo_environment(
            os.environ,
            workdir=self.dir,
            repo=self.repo,
            event_path=self.event_path,
            url=self.emulator.url,
            api_key=self.emulator.api_key,
            account_id=self.emulator.account_id,
        )
        env["GITHUB_EVENT_NAME"] = event_name
        env["INPUT_POLL_INTERVAL"] = "0.1s"
        if event_name != "pull_request":
            for name in ("GITHUB_HEAD_REF", "GITHUB_BASE_REF"):
                env.pop(name, None)
            env["GITHUB_REF"] = str(payload.get("ref", ""))
            env["GITHUB_SHA"] = str(payload.get("after", ""))
        env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
        return env

    def run(self, event_name: str, payload: dict[str, Any], **inputs: str) -> Run:
        env = self.environ(event_name, payload, **inputs)
        stream = io.StringIO()
        runner = Runner(environ=env, stream=stream)
        event = load_event(env)
        if skip_fork_pull_request(event, env, {}, runner):
            exit_code = 0
        else:
            settings = load_settings(env, event=event, cwd=self.repo)
            exit_code = run_pipeline(settings, event, runner).exit_code
        outputs = parse_output_file((self.dir / "github_output").read_text(encoding="utf-8"))
        summary = (self.dir / "step_summary.md").read_text(encoding="utf-8")
        return Run(exit_code, outputs.get("result", ""), outputs, stream.getvalue(), summary)

    def push(self, branch: str) -> dict[str, Any]:
        repository = {"full_name": "demo/sample-agent", "name": "sample-agent", "default_branch": "main"}
        return {"ref": f"refs/heads/{branch}", "after": self.head_sha, "before": "0" * 40, "repository": repository}

    def set_dockerfile(self, text: str) -> None:
        (self.repo / AGENT_FOLDER / "Dockerfile").write_text(text, encoding="utf-8")
        if HAS_GIT:
            run_git(self.repo, "commit", "-q", "-am", "change the Dockerfile")
            self.head_sha = run_git(self.repo, "rev-parse", "HEAD")


class ForgeWorkspace(Workspace):
    """A Workspace whose runs see GITHUB_API_URL pointing at the local forge."""

    api_url = ""

    def environ(self, event_name: str, payload: dict[str, Any], **inputs: str) -> dict[str, str]:
        env = super().environ(event_name, payload, **inputs)
        env["GITHUB_API_URL"] = self.api_url
        return env


def build_log_lines(log: str) -> list[str]:
    """The lines printed inside the build-log group (stop-commands tokens left out)."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::group::Build logs"))
    inside: list[str] = []
    for line in lines[start + 1 :]:
        if line == "::endgroup::":
            break
        if not line.startswith("::"):
            inside.append(line)
    return inside


def server_build_log(emulator: EmulatorHandle, build_id: str) -> list[str]:
    """The build's whole log, read over SSE after the run (with faults cleared)."""
    emulator.set_faults([])
    with requests.get(
        f"{emulator.url}/v5/builds/{build_id}/logs", headers=emulator.headers, stream=True, timeout=10
    ) as response:
        return [
            json.loads(raw[len("data: ") :])["line"]
            for raw in response.iter_lines(decode_unicode=True)
            if raw.startswith("data: ")
        ]


def run_action_process(ws: Workspace, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m sgp_action run` in the consumer repository, as action.yml runs it."""
    return subprocess.run(
        [sys.executable, "-m", "sgp_action", "run"],
        env=env,
        cwd=ws.repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_run(env: dict[str, str]) -> subprocess.Popen[str]:
    """`python -m sgp_action run` started in the background, stdout and stderr merged into one text pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "sgp_action", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], marker: str, *, anywhere: bool = False) -> None:
    """Read the run's output until a line starts with `marker` (holds it, with `anywhere`); fails if the run ends."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if (marker in line) if anywhere else line.startswith(marker):
            return
    raise AssertionError(f"the run ended (exit {proc.wait()}) without printing a line with {marker!r}")
