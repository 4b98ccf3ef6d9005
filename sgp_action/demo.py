"""The demo: the whole preview flow against a private emulator, on the bundled sample agent.

It sets up what a runner would: a throwaway repository holding a copy of `examples/sample-agent` (committed, so the
build's provenance is a real commit), a `pull_request` event payload, and fresh `GITHUB_OUTPUT` /
`GITHUB_STEP_SUMMARY` files. Then it runs `python -m sgp_action run` exactly as `action.yml` does, with the inputs
as `INPUT_*` variables, against an emulator serving on 127.0.0.1 in a background thread of this process. Running the
real command in a child process keeps the demo honest: it exercises the same entry point, environment handling and
exit codes as a workflow step.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sgp_action.errors import ConfigError

log = logging.getLogger(__name__)

PR_NUMBER = 42
AGENT_FOLDER = "sample-agent"
DEMO_REPOSITORY = "demo/sample-agent"
# Variables a surrounding CI job may have set that would leak into, or redirect, the demo's private run.
_FOREIGN_PREFIXES = ("INPUT_", "GITHUB_", "GITEA_", "FORGEJO_", "RUNNER_", "SGP_")


def sample_agent_dir() -> Path:
    """The bundled sample agent: `examples/sample-agent` of the checkout this package is installed from."""
    candidate = Path(__file__).resolve().parent.parent / "examples" / AGENT_FOLDER
    if not (candidate / "manifest.yaml").is_file():
        raise ConfigError(
            f"the bundled sample agent is missing ({candidate}): run the demo from a checkout of the project, "
            "installed with `pip install -e .`"
        )
    return candidate


@dataclass
class DemoResult:
    """What the demo's run produced."""

    returncode: int
    outputs: dict[str, str]
    summary: str
    workdir: Path
    emulator_url: str
    head_sha: str
    state: dict[str, Any] = field(default_factory=dict)


def parse_output_file(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file: `name=value` lines and `name<<DELIM` heredocs (docs/runner.md#step-outputs)."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc != -1 and (eq == -1 or heredoc < eq):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            value: list[str] = []
            while index < len(lines) and lines[index] != delimiter:
                value.append(lines[index])
                index += 1
            if index >= len(lines):
                raise ValueError(f"output {name!r}: the delimiter {delimiter!r} never closes the value")
            index += 1
            outputs[name] = "\n".join(value)
        elif eq != -1:
            outputs[line[:eq]] = line[eq + 1 :]
        else:
            raise ValueError(f"not an output line: {line!r}")
    return outputs


def run_git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity and no user or system configuration; return its stdout."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "sgp-action demo",
        "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "sgp-action demo",
        "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def prepare_repository(workdir: Path) -> tuple[Path, str]:
    """Copy the sample agent into a new repository under `workdir`; return (repo, head commit SHA)."""
    repo = workdir / "repo"
    shutil.copytree(
        sample_agent_dir(), repo / AGENT_FOLDER, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".venv")
    )
    if shutil.which("git") is None:
        # Without git the provenance has no commit; the payload still names one, as a forge would.
        log.info("git not found: the demo repository is a plain folder")
        return repo, secrets.token_hex(20)
    run_git(repo, "init", "-q", "-b", "feature")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "sample agent")
    return repo, run_git(repo, "rev-parse", "HEAD")


def pull_request_event(head_sha: str, number: int = PR_NUMBER) -> dict[str, object]:
    """A `pull_request` / `opened` payload with the fields the action reads."""
    owner, name = DEMO_REPOSITORY.split("/")
    repository = {"full_name": DEMO_REPOSITORY, "name": name, "owner": {"login": owner}, "default_branch": "main"}
    head = {"ref": "feature", "sha": head_sha, "repo": {**repository, "fork": False}}
    pull = {"number": number, "state": "open", "head": head, "base": {"ref": "main", "repo": repository}}
    return {"action": "opened", "number": number, "pull_request": pull, "repository": repository}


def demo_environment(
    base: Mapping[str, str], *, workdir: Path, repo: Path, event_path: Path, url: str, api_key: str, account_id: str
) -> dict[str, str]:
    """The environment of the `run` child: the caller's, minus CI variables, plus a runner's and the inputs."""
    env = {k: v for k, v in base.items() if not k.startswith(_FOREIGN_PREFIXES)}
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_OUTPUT": str(workdir / "github_output"),
            "GITHUB_STEP_SUMMARY": str(workdir / "step_summary.md"),
            "GITHUB_REPOSITORY": DEMO_REPOSITORY,
            "GITHUB_REF": f"refs/pull/{PR_NUMBER}/merge",
            "GITHUB_HEAD_REF": "feature",
            "GITHUB_BASE_REF": "main",
            "GITHUB_WORKSPACE": str(repo),
            "RUNNER_TEMP": str(workdir),
            "INPUT_COMMAND": "auto",
            "INPUT_API_KEY": api_key,
            "INPUT_ACCOUNT_ID": account_id,
            "INPUT_BASE_URL": url,
            "INPUT_WORKING_DIRECTORY": str(repo),
            "INPUT_MANIFEST": f"{AGENT_FOLDER}/manifest.yaml",
            "INPUT_PREVIEW_TTL": "8h",
            "INPUT_POLL_INTERVAL": "1s",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_demo(
    *,
    stdout: IO[str] | None = None,
    dialect: str = "current",
    build_seconds: float = 1.5,
    deploy_seconds: float = 1.5,
    workdir: Path | None = None,
) -> DemoResult:
    """Start a private emulator, run the preview flow as a child `sgp-action run`, and collect what it wrote.

    The child's log goes to `stdout` (inherited when None). The emulator is closed before returning; `workdir`
    (a new temporary directory when None) is left for the caller to delete.
    """
    from sgp_action.emulator import EmulatorConfig, EmulatorServer

    workdir = workdir or Path(tempfile.mkdtemp(prefix="sgp-action-demo-"))
    repo, head_sha = prepare_repository(workdir)
    event_path = workdir / "event.json"
    event_path.write_text(json.dumps(pull_request_event(head_sha), indent=2), encoding="utf-8")
    for name in ("github_output", "step_summary.md"):
        (workdir / name).write_text("", encoding="utf-8")
    api_key, account_id = f"demo-{secrets.token_hex(12)}", "demo-account"
    config = EmulatorConfig(
        api_key=api_key,
        account_id=account_id,
        dialect=dialect,
        build_seconds=build_seconds,
        deploy_seconds=deploy_seconds,
    )
    server = EmulatorServer(config).start()
    try:
        env = demo_environment(
            os.environ,
            workdir=workdir,
            repo=repo,
            event_path=event_path,
            url=server.url,
            api_key=api_key,
            account_id=account_id,
        )
        log.info("emulator %s; repository %s; head %s", server.url, repo, head_sha)
        done = subprocess.run(
            [sys.executable, "-m", "sgp_action", "run"],
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            check=False,
        )
        state = server.store.snapshot()
    finally:
        server.close()
    return DemoResult(
        returncode=done.returncode,
        outputs=parse_output_file((workdir / "github_output").read_text(encoding="utf-8")),
        summary=(workdir / "step_summary.md").read_text(encoding="utf-8"),
        workdir=workdir,
        emulator_url=server.url,
        head_sha=head_sha,
        state=state,
    )
