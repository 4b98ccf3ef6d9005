"""Secrets and hostile text (issue 6 item 4, docs/build-context.md#secret-looking-files, docs/runner.md#masks), over
whole `python -m sgp_action run`s.

* The API key and the forge token are registered with `::add-mask::` before any other line and never printed again,
  not with `debug`, not in error bodies, not in tracebacks.
* Text from the server (build log lines made by `RUN echo ...`) cannot act as a workflow command under the GitHub
  runner's or act's rules (tests/runner_rules.py models both).
* An output value holding the heredoc delimiter is refused; the context tar never holds an absolute path, `..` or
  `.git`; secret-looking files are warned about.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from sgp_action.ci.runner import Runner
from sgp_action.demo import AGENT_FOLDER, pull_request_event
from sgp_action.errors import EXIT_API, EXIT_FAILED, EXIT_OK, ActionError
from sgp_action.packaging.archive import BuildContextSpec, build_context
from tests.run_helpers import Workspace, run_action_process
from tests.runner_rules import act_processed_commands, github_processed_commands
from tests.support import ROOT, EmulatorHandle

TOKEN = "ghs_" + "T0kenValue" * 3
HOSTILE_RUNS = [
    "RUN echo ::set-output name=x::y",
    "RUN echo ::add-mask::abc",
    "RUN echo ::stop-commands::zzz",
    "RUN echo '##[error]x'",
    "RUN echo ::error::forged",
    "RUN echo '  ::warning::indented'",
]
#: Commands the action itself may send; anything else in the log came from server text that got through.
OWN_COMMANDS = {"add-mask", "group", "endgroup", "stop-commands", "<resume>", "notice", "warning", "error", "debug"}


def run_action(ws: Workspace, **inputs: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """A full run as action.yml runs it, with the token and debug on; returns the process and the API key."""
    inputs = {"github_token": TOKEN, "comment": "false", "debug": "true", **inputs}
    env = ws.environ("pull_request", pull_request_event(ws.head_sha), **inputs)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = run_action_process(ws, env)
    return proc, env["INPUT_API_KEY"]


def assert_secrets_kept(proc: subprocess.CompletedProcess[str], key: str) -> None:
    """Both secrets are masked by the first lines, and appear nowhere else in stdout or stderr."""
    detail = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert set(lines[:2]) == {f"::add-mask::{key}", f"::add-mask::{TOKEN}"}, detail
    rest = "\n".join(lines[2:]) + proc.stderr
    for secret in (key, TOKEN):
        assert secret not in rest, detail


def assert_no_foreign_command(stdout: str) -> None:
    """Only the action's own commands would be acted on, and only our two masks are registered."""
    for processed in (github_processed_commands(stdout), act_processed_commands(stdout)):
        assert set(processed) <= OWN_COMMANDS, processed
        assert processed.count("add-mask") == 2, processed
        assert processed.count("stop-commands") == processed.count("<resume>"), processed


def test_hostile_build_log_cannot_act_and_secrets_stay_masked(tmp_path: Path, emulator: EmulatorHandle) -> None:
    ws = Workspace(tmp_path, emulator)
    dockerfile = (ws.repo / AGENT_FOLDER / "Dockerfile").read_text(encoding="utf-8")
    ws.set_dockerfile(dockerfile + "\n".join(HOSTILE_RUNS) + f"\nRUN echo {emulator.api_key}\n")
    (ws.repo / AGENT_FOLDER / "project" / "server.pem").write_text("-----BEGIN-----\n", encoding="utf-8")
    proc, key = run_action(ws)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert_secrets_kept(proc, key)
    assert_no_foreign_command(proc.stdout)
    # The hostile lines did reach the log (as plain text), and the key echoed by the build was redacted.
    for marker in ("set-output name=x::y", "add-mask::abc", "stop-commands::zzz", "[error]x", "error::forged"):
        assert marker in proc.stdout, proc.stdout
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("::warning")]
    assert any("server.pem" in line for line in warnings), proc.stdout


def test_wrong_account_error_body_and_traceback_keep_the_key(tmp_path: Path, emulator: EmulatorHandle) -> None:
    ws = Workspace(tmp_path, emulator)
    proc, key = run_action(ws, account_id="someone-elses-account")
    assert proc.returncode == EXIT_API, proc.stdout + proc.stderr
    assert_secrets_kept(proc, key)
    assert_no_foreign_command(proc.stdout)
    assert len([line for line in proc.stdout.splitlines() if line.startswith("::error")]) == 1, proc.stdout


def test_wrong_key_is_never_echoed(tmp_path: Path, emulator: EmulatorHandle) -> None:
    ws = Workspace(tmp_path, emulator)
    proc, key = run_action(ws, api_key="sk-wrong-" + "k" * 24)
    assert key.startswith("sk-wrong-")
    assert proc.returncode == EXIT_API, proc.stdout + proc.stderr
    assert_secrets_kept(proc, key)
    assert_no_foreign_command(proc.stdout)


def test_failing_build_shows_its_tail_without_secrets(tmp_path: Path, emulator: EmulatorHandle) -> None:
    ws = Workspace(tmp_path, emulator)
    dockerfile = (ws.repo / AGENT_FOLDER / "Dockerfile").read_text(encoding="utf-8")
    ws.set_dockerfile(dockerfile + f"RUN echo ::set-output name=leak::{emulator.api_key} && false\n")
    proc, key = run_action(ws)
    assert proc.returncode == EXIT_FAILED, proc.stdout + proc.stderr
    assert_secrets_kept(proc, key)
    assert_no_foreign_command(proc.stdout)


def test_output_value_holding_the_delimiter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = uuid.UUID(int=12345)
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    output = tmp_path / "github_output"
    output.write_text("", encoding="utf-8")
    runner = Runner(environ={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output)}, stream=io.StringIO())
    with pytest.raises(ActionError, match="delimiter"):
        runner.set_output("url", f"x\nghadelimiter_{fixed}\nresult=success")
    assert output.read_text(encoding="utf-8") == ""
    runner.set_output("url", "http://ok")
    assert "http://ok" in output.read_text(encoding="utf-8")


def test_archive_has_no_absolute_path_dotdot_or_git(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside\n", encoding="utf-8")
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text(f"[http]\n\textraheader = AUTHORIZATION: basic {TOKEN}\n", encoding="utf-8")
    (root / "sub" / ".git").mkdir(parents=True)
    (root / "sub" / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (root / "Dockerfile").write_text("FROM alpine\n", encoding="utf-8")
    (root / "sub" / "..data").write_text("dots in a name are fine\n", encoding="utf-8")
    (root / "sub" / "up").symlink_to("../../outside/secret.txt")
    (root / "abs").symlink_to(outside / "secret.txt")
    (root / "id_rsa").write_text("key\n", encoding="utf-8")
    result = build_context(BuildContextSpec.plain(root), tmp_path / "ctx.tar.gz")
    with tarfile.open(result.path, "r:gz") as archive:
        members = archive.getmembers()
        for member in members:
            parts = member.name.split("/")
            assert not member.name.startswith("/") and ".." not in parts, member.name
            assert ".git" not in parts, member.name
            assert member.uid == 0 and member.gid == 0 and member.uname == "" and member.gname == ""
            if member.isfile():
                data = archive.extractfile(member)
                assert data is not None and TOKEN.encode() not in data.read()
        names = {m.name.rstrip("/") for m in members}
    assert {"Dockerfile", "sub/..data", "id_rsa"} <= names
    assert "id_rsa" in result.secret_like
