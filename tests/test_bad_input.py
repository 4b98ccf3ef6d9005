"""The bad-input catalogue (issue 6 item 3): every case is a whole `python -m sgp_action run`, as action.yml runs it.

Each must exit 2 with exactly one `::error::` line naming what to fix, and reach the emulator with no request that
creates anything (the emulator records every API request; a bad input should make none at all, and a bad build
context none before packaging fails).
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sgp_action.demo import AGENT_FOLDER, pull_request_event
from sgp_action.errors import EXIT_CONFIG, ContextError
from sgp_action.packaging import archive as context_module
from tests.run_helpers import Workspace, run_action_process
from tests.support import CHECKOUT_TOKEN, ROOT, EmulatorHandle, keep_checkout_credentials

Setup = Callable[[Workspace, dict[str, str]], None]


def _agent(ws: Workspace) -> Path:
    return ws.repo / AGENT_FOLDER


def _write(rel: str, text: str) -> Setup:
    def setup(ws: Workspace, env: dict[str, str]) -> None:
        path = _agent(ws) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    return setup


def _remove(rel: str) -> Setup:
    def setup(ws: Workspace, env: dict[str, str]) -> None:
        (_agent(ws) / rel).unlink()

    return setup


def _edit_manifest(old: str, new: str) -> Setup:
    def setup(ws: Workspace, env: dict[str, str]) -> None:
        path = _agent(ws) / "manifest.yaml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new), encoding="utf-8")

    return setup


def _unset(name: str) -> Setup:
    def setup(ws: Workspace, env: dict[str, str]) -> None:
        env.pop(name, None)

    return setup


def _missing_event(ws: Workspace, env: dict[str, str]) -> None:
    env["GITHUB_EVENT_PATH"] = str(ws.dir / "no-such-event.json")


def _event_not_json(ws: Workspace, env: dict[str, str]) -> None:
    Path(env["GITHUB_EVENT_PATH"]).write_text("{not json", encoding="utf-8")


def _working_directory_is_a_file(ws: Workspace, env: dict[str, str]) -> None:
    (ws.dir / "a-file").write_text("", encoding="utf-8")
    env["INPUT_WORKING_DIRECTORY"] = str(ws.dir / "a-file")


def _escaping_symlink(ws: Workspace, env: dict[str, str]) -> None:
    outside = ws.dir / "outside.txt"
    outside.write_text("not part of the repository\n", encoding="utf-8")
    (_agent(ws) / "project" / "escape.txt").symlink_to(outside)


def _not_a_directory_include(ws: Workspace, env: dict[str, str]) -> None:
    (ws.repo / "notes.txt").write_text("a file, not a folder\n", encoding="utf-8")
    _edit_manifest("      - sample-agent\n", "      - sample-agent\n      - notes.txt\n")(ws, env)


def _dockerignore_is_git_config(ws: Workspace, env: dict[str, str]) -> None:
    keep_checkout_credentials(ws.repo)
    _edit_manifest("dockerignore: sample-agent/.dockerignore", "dockerignore: .git/config")(ws, env)


def _dockerfile_links_outside(ws: Workspace, env: dict[str, str]) -> None:
    outside = ws.dir / "outside" / "Dockerfile"
    outside.parent.mkdir()
    outside.write_text("FROM attacker\n", encoding="utf-8")
    (_agent(ws) / "Dockerfile").unlink()
    (_agent(ws) / "Dockerfile").symlink_to(outside)


def _context_root_outside(ws: Workspace, env: dict[str, str]) -> None:
    path = _agent(ws) / "manifest.yaml"
    text = path.read_text(encoding="utf-8").replace("root: ..\n", "root: ../..\n")
    text = text.replace("- sample-agent\n", "- repo/sample-agent\n").replace(": sample-agent/", ": repo/sample-agent/")
    path.write_text(text, encoding="utf-8")


def _link_into_git(ws: Workspace, env: dict[str, str]) -> None:
    keep_checkout_credentials(ws.repo)
    (_agent(ws) / "project" / "g").symlink_to("../../.git")


def _over_a_mebibyte(rel: str) -> Setup:
    def setup(ws: Workspace, env: dict[str, str]) -> None:
        path = _agent(ws) / rel
        with path.open("a", encoding="utf-8") as handle:
            handle.write("#" + "x" * (1024 * 1024) + "\n")

    return setup


TWO_ENVIRONMENTS = """schema_version: v1
environments:
  dev:
    auth: {principal: {service_account_id: 00000000-0000-0000-0000-000000000000}}
  prod:
    auth: {principal: {service_account_id: 00000000-0000-0000-0000-000000000000}}
"""

# (case id, inputs as INPUT_* values, setup, words the one error line must contain)
CASES: list[tuple[str, dict[str, str], Setup | None, tuple[str, ...]]] = [
    ("empty-key", {"api_key": ""}, None, ("api-key",)),
    ("blank-account", {"account_id": ""}, None, ("account-id",)),
    ("key-with-newline", {"api_key": "abc\ndef"}, None, ("api-key", "line break")),
    ("bad-base-url", {"base_url": "not a url"}, None, ("base-url",)),
    ("base-url-ftp", {"base_url": "ftp://127.0.0.1/"}, None, ("base-url",)),
    ("base-url-credentials", {"base_url": "http://user:pw@127.0.0.1:1/"}, None, ("base-url", "credentials")),
    ("base-url-http-off-machine", {"base_url": "http://sgp.invalid:9"}, None, ("base-url", "allow-insecure-http")),
    ("unknown-command", {"command": "launch"}, None, ("command",)),
    ("unparseable-ttl", {"preview_ttl": "soon"}, None, ("preview-ttl",)),
    ("bad-ttl-unit", {"preview_ttl": "8x"}, None, ("preview-ttl",)),
    ("negative-ttl", {"preview_ttl": "-5m"}, None, ("preview-ttl",)),
    ("negative-build-timeout", {"build_timeout": "-1h"}, None, ("build-timeout",)),
    ("bad-poll-interval", {"poll_interval": "often"}, None, ("poll-interval",)),
    ("expiry-in-past", {"expires_at": "2001-01-01T00:00:00Z"}, None, ("expires-at", "future")),
    ("expiry-unparseable", {"expires_at": "next tuesday"}, None, ("expires-at",)),
    ("label-sanitizes-to-nothing", {"preview_label": "!!!"}, None, ("preview-label",)),
    ("bad-boolean", {"wait": "maybe"}, None, ("wait", "true or false")),
    ("bad-debug-boolean", {"debug": "yes please"}, None, ("debug",)),
    ("bad-comment-choice", {"comment": "sometimes"}, None, ("comment", "auto")),
    ("bad-build-args", {"build_args": "GOOD=1\nNO_EQUALS_SIGN"}, None, ("build-args line 2",)),
    ("duplicate-build-args", {"build_args": "A=1\nA=2"}, None, ("build-args", "twice")),
    ("unknown-platform", {"platform": "windows/amd64"}, None, ("platform",)),
    ("bad-image-tag", {"image_tag": "no spaces allowed"}, None, ("image-tag",)),
    ("working-directory-missing", {"working_directory": "/nonexistent/sgp-action-test"}, None, ("working-directory",)),
    ("missing-manifest", {"manifest": "sample-agent/nope.yaml"}, None, ("nope.yaml",)),
    ("invalid-yaml-manifest", {}, _write("manifest.yaml", "build: [unclosed\n  agent: {\n"), ("manifest",)),
    ("agent-name-pattern", {}, _edit_manifest("name: sample-agent", "name: Sample_Agent"), ("Sample_Agent",)),
    ("unknown-environment", {"environment": "staging"}, None, ("staging",)),
    ("unknown-environment-on-a-build", {"command": "build", "environment": "staging"}, None, ("staging",)),
    ("several-environments", {}, _write("environments.yaml", TWO_ENVIRONMENTS), ("environment",)),
    ("invalid-yaml-environments", {}, _write("environments.yaml", "environments: [\n"), ("environments",)),
    ("broken-dockerignore", {}, _write(".dockerignore", "[\n"), (".dockerignore",)),
    ("escaping-symlink", {"follow_symlinks": "true"}, _escaping_symlink, ("escape.txt",)),
    ("bad-follow-symlinks", {"follow_symlinks": "sure"}, None, ("follow-symlinks",)),
    ("missing-dockerfile", {}, _remove("Dockerfile"), ("Dockerfile",)),
    ("include-path-not-a-directory", {}, _not_a_directory_include, ("notes.txt",)),
    # Nothing from outside the workspace or from .git is packaged (the repository holds the working directory).
    (
        "dockerfile-outside-the-workspace",
        {},
        _edit_manifest("dockerfile: sample-agent/Dockerfile", "dockerfile: " + "../" * 12 + "etc/passwd"),
        ("build.context.dockerfile", "resolves to /etc/passwd", "outside the workspace"),
    ),
    (
        "dockerignore-is-git-config",
        {},
        _dockerignore_is_git_config,
        ("build.context.dockerignore", "repo/.git/config", "inside a .git folder"),
    ),
    ("dockerfile-links-outside", {}, _dockerfile_links_outside, ("build.context.dockerfile", "outside/Dockerfile")),
    ("context-root-outside", {}, _context_root_outside, ("build.context.root", "outside the workspace")),
    ("follow-symlink-into-git", {"follow_symlinks": "true"}, _link_into_git, ("sample-agent/project/g", ".git")),
    ("manifest-over-1-mib", {}, _over_a_mebibyte("manifest.yaml"), ("manifest.yaml", "1 MiB limit")),
    ("environments-over-1-mib", {}, _over_a_mebibyte("environments.yaml"), ("environments.yaml", "1 MiB limit")),
    ("missing-event-file", {}, _missing_event, ("no-such-event.json",)),
    ("event-file-not-json", {}, _event_not_json, ("event",)),
    ("working-directory-is-a-file", {}, _working_directory_is_a_file, ("working-directory",)),
    # A dry run needs no key, except where the plan itself is read from the server.
    ("cleanup-dry-run-without-key", {"command": "cleanup", "dry_run": "true", "api_key": ""}, None, ("api-key",)),
    (
        "teardown-dry-run-without-account",
        {"command": "teardown", "dry_run": "true", "account_id": ""},
        None,
        ("account-id", "teardown"),
    ),
]


def error_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("::error")]


def assert_refused(proc: subprocess.CompletedProcess[str], emulator: EmulatorHandle, words: tuple[str, ...]) -> None:
    """Exit 2, exactly one ::error:: line carrying `words`, and no API request at all."""
    detail = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == EXIT_CONFIG, detail
    errors = error_lines(proc.stdout)
    assert len(errors) == 1, detail
    for word in words:
        assert word.lower() in errors[0].lower(), detail
    state = emulator.state()
    assert [r for r in state["requests"] if r.get("method") != "GET"] == [], state["requests"]
    assert state["requests"] == [], state["requests"]
    assert state["builds"] == [] and state["deployments"] == []


@pytest.mark.parametrize(("inputs", "setup", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_request(
    tmp_path: Path,
    emulator: EmulatorHandle,
    inputs: dict[str, str],
    setup: Setup | None,
    words: tuple[str, ...],
) -> None:
    ws = Workspace(tmp_path, emulator)
    env = ws.environ("pull_request", pull_request_event(ws.head_sha), **inputs)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if setup is not None:
        setup(ws, env)
    proc = run_action_process(ws, env)
    assert_refused(proc, emulator, words)
    assert CHECKOUT_TOKEN not in proc.stdout + proc.stderr


def test_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_context_over_the_limit_is_refused_before_upload(
    tmp_path: Path, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 MB has no input to lower it, so the in-process full run packages with a small limit (same code path)."""
    ws = Workspace(tmp_path, emulator)
    (_agent(ws) / "project" / "noise.bin").write_bytes(os.urandom(64 * 1024))
    small = functools.partial(context_module.build_context, max_bytes=16 * 1024)
    monkeypatch.setattr(context_module, "build_context", small)
    run = ws.run("pull_request", pull_request_event(ws.head_sha))
    assert run.exit_code == EXIT_CONFIG, run.log
    errors = error_lines(run.log)
    assert len(errors) == 1 and "upload" in errors[0] and ".dockerignore" in errors[0], run.log
    state = emulator.state()
    assert [r for r in state["requests"] if r.get("method") != "GET"] == [], state["requests"]
    assert state["builds"] == [] and state["deployments"] == []


def test_context_limit_is_the_build_apis(tmp_path: Path) -> None:
    """The packaging-level check, with the real constant, on an archive just over a small limit."""
    assert context_module.MAX_CONTEXT_BYTES == 500 * 1024 * 1024
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM alpine\n", encoding="utf-8")
    (root / "blob").write_bytes(os.urandom(8192))
    spec = context_module.BuildContextSpec.plain(root)
    with pytest.raises(ContextError, match="upload"):
        context_module.build_context(spec, tmp_path / "out.tar.gz", max_bytes=4096)
    assert not (tmp_path / "out.tar.gz").exists()
