"""`doctor`: the read-only preflight, against the emulator and against hostile servers of the tests' own."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sgp_action import cli
from sgp_action.api.readonly import WriteRefused
from sgp_action.ci.event import load_event
from sgp_action.ci.runner import Runner, reset_default_runner
from sgp_action.run.checklist import Checklist
from sgp_action.run.doctor import diagnose, report
from sgp_action.run.doctor_sgp import ReadOnlySGP
from sgp_action.run.pipeline import run_pipeline
from sgp_action.run.settings import load_settings
from tests.support import EmulatorHandle, agent_yaml

MANIFEST = """\
build:
  context:
    root: .
    include_paths: [src]
    dockerfile: Dockerfile
agent:
  name: doc-bot
  acp_type: sync
  description: doctor test agent
"""
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in - Corp SSO</title></head><body>login</body></html>"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An agent checkout: manifest, environments (one `prod`), Dockerfile and a source file."""
    root = tmp_path / "agent"
    root.mkdir()
    _, environments = agent_yaml("doc-bot")
    (root / "manifest.yaml").write_text(MANIFEST, encoding="utf-8")
    (root / "environments.yaml").write_text(environments, encoding="utf-8")
    (root / "Dockerfile").write_text("FROM alpine\nCOPY src /src\n", encoding="utf-8")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hello')\n", encoding="utf-8")
    return root


def environ(
    tmp_path: Path, url: str, project: Path, extra: dict[str, str] | None = None, **inputs: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "GITEA_", "FORGEJO_"))}
    env.pop("RUNNER_DEBUG", None)
    summary = tmp_path / "summary.md"
    summary.write_text("", encoding="utf-8")
    env.update(
        {
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(tmp_path),
            "INPUT_BASE_URL": url,
            "INPUT_API_KEY": "test-api-key",
            "INPUT_ACCOUNT_ID": "test-account",
            "INPUT_WORKING_DIRECTORY": str(project),
        }
    )
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    env.update(extra or {})
    return env


def doctor(
    tmp_path: Path,
    url: str,
    project: Path,
    max_bytes: int | None = None,
    extra: dict[str, str] | None = None,
    **inputs: str,
) -> tuple[int, str]:
    """Run the checks as the CLI does; (exit code, printed checklist)."""
    env = environ(tmp_path, url, project, extra, **inputs)
    event = load_event(env)
    settings = load_settings(env, {"command": "doctor"}, event=event)
    limits: dict[str, Any] = {"max_context_bytes": max_bytes} if max_bytes is not None else {}
    checks = diagnose(settings, event, timeout=5.0, **limits)
    stream = io.StringIO()
    code = report(checks, Runner(environ=env, stream=stream))
    return code, stream.getvalue()


def line(text: str, name: str) -> str:
    return next(row for row in text.splitlines() if row[6:].startswith(f" {name}:"))


def test_a_good_setup_passes_with_nothing_but_gets(tmp_path: Path, project: Path, emulator: EmulatorHandle) -> None:
    code, text = doctor(tmp_path, emulator.url, project)
    assert code == 0, text
    for name in ("base-url", "api-key", "account-id", "list builds", "list deployments", "manifest", "environment"):
        assert line(text, name).startswith("[ok]"), text
    assert "doc-bot does not exist yet" in line(text, "agent")
    assert "files" in line(text, "build context") and "limit" in line(text, "build context")
    assert "ready to deploy" in (tmp_path / "summary.md").read_text(encoding="utf-8")
    methods = {r["method"] for r in emulator.state()["requests"]}
    assert methods == {"GET"}


def test_an_existing_agent_shows_builds_and_previews(tmp_path: Path, project: Path, emulator: EmulatorHandle) -> None:
    client = emulator.sdk()
    build = client.build.create(image_name="doc-bot", agent_name="doc-bot", image_url="registry.example/doc-bot:1")
    manifest, environments = agent_yaml("doc-bot")
    client.deploy.create(
        manifest_file=manifest, environment_config=environments, build_id=build.id, preview=True, preview_label="pr-7"
    )
    before = len(emulator.state()["requests"])
    code, text = doctor(tmp_path, emulator.url, project)
    assert code == 0, text
    assert "doc-bot exists (agent_id" in line(text, "agent")
    assert build.id in line(text, "latest builds") and "success" in line(text, "latest builds")
    assert "preview pr-7" in line(text, "active deployments") and "expires" in line(text, "active deployments")
    assert {r["method"] for r in emulator.state()["requests"][before:]} == {"GET"}


def test_a_wrong_key_is_told_apart_from_a_wrong_account(
    tmp_path: Path, project: Path, emulator: EmulatorHandle
) -> None:
    code, text = doctor(tmp_path, emulator.url, project, api_key="wrong-key")
    assert code == 3
    assert line(text, "api-key").startswith("[FAIL]") and "401" in text and "fix: set api-key" in text
    assert line(text, "account-id").startswith("[skip]")
    code, text = doctor(tmp_path, emulator.url, project, account_id="other-account")
    assert code == 3
    assert line(text, "api-key").startswith("[ok]")
    assert line(text, "account-id").startswith("[FAIL]") and "403" in text and "fix: set account-id" in text


class LoginPage(BaseHTTPRequestHandler):
    """A web UI's single sign-on page where the API should be."""

    def do_GET(self) -> None:
        if self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", "https://sso.corp.example/login?next=/v5/builds")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(LOGIN_PAGE)))
        self.end_headers()
        self.wfile.write(LOGIN_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def login_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), LoginPage)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_html_login_page_names_the_base_url_fix(tmp_path: Path, project: Path, login_server: str) -> None:
    code, text = doctor(tmp_path, login_server, project)
    assert code == 3
    assert line(text, "base-url").startswith("[FAIL]")
    assert "HTML page" in text and "Sign in - Corp SSO" in text and "fix: set base-url" in text
    assert line(text, "manifest").startswith("[ok]")  # the local checks still run


def test_a_redirect_names_its_host_and_is_not_followed(tmp_path: Path, project: Path, login_server: str) -> None:
    code, text = doctor(tmp_path, f"{login_server}/moved", project)
    assert code == 3
    assert "redirects (302) to sso.corp.example" in line(text, "base-url") and "fix: set base-url" in text


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_an_untrusted_certificate_is_a_tls_failure(tmp_path: Path, project: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    subprocess.run(
        ["openssl", "req", "-x509", *curve, "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), LoginPage)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        code, text = doctor(tmp_path, f"https://127.0.0.1:{server.server_address[1]}", project)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 3
    assert "TLS with 127.0.0.1" in line(text, "base-url") and "certificate" in line(text, "base-url")


def test_a_closed_port_names_the_base_url_fix(tmp_path: Path, project: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    code, text = doctor(tmp_path, f"http://127.0.0.1:{port}", project)
    assert code == 3
    assert "cannot reach 127.0.0.1" in line(text, "base-url") and "fix: check base-url" in text


def test_an_unknown_environment_is_a_local_problem(tmp_path: Path, project: Path, emulator: EmulatorHandle) -> None:
    code, text = doctor(tmp_path, emulator.url, project, environment="staging")
    assert code == 2
    assert line(text, "environment").startswith("[FAIL]") and "'staging'" in text and "prod" in text
    assert "fix: set the environment input" in text


def test_a_context_over_the_limit_is_a_local_problem(tmp_path: Path, project: Path, emulator: EmulatorHandle) -> None:
    (project / "src" / "blob.bin").write_bytes(os.urandom(64 * 1024))  # incompressible: over a 16 KiB limit
    code, text = doctor(tmp_path, emulator.url, project, max_bytes=16 * 1024)
    assert code == 2
    assert line(text, "build context").startswith("[FAIL]") and "fix: exclude" in text
    assert not list(tmp_path.glob("sgp-doctor-*"))  # the trial archive is gone


def test_secret_looking_files_and_auto_are_reported(tmp_path: Path, project: Path, emulator: EmulatorHandle) -> None:
    (project / "src" / ".env").write_text("TOKEN=1\n", encoding="utf-8")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "opened", "number": 5, "pull_request": {"number": 5}}), encoding="utf-8")
    extra = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    code, text = doctor(tmp_path, emulator.url, project, extra=extra)
    assert code == 0, text
    assert line(text, "secret-looking files").startswith("[warn]") and "src/.env" in text
    assert "pull_request (opened) -> preview with label pr-5" in line(text, "command: auto")
    code, text = doctor(tmp_path, emulator.url, project)
    assert "no event" in line(text, "command: auto")


def test_the_read_only_view_cannot_write(project: Path, emulator: EmulatorHandle, tmp_path: Path) -> None:
    env = environ(tmp_path, emulator.url, project)
    settings = load_settings(env, {"command": "doctor"}, event=load_event(env))
    with ReadOnlySGP(settings) as sgp:
        assert not any(hasattr(sgp, name) for name in ("create_build", "delete_deployment", "cancel_build"))
        with pytest.raises(WriteRefused):
            sgp.client().delete_deployment("deploy_x")
    assert emulator.state()["requests"] == []


def test_the_cli_and_the_action_command_run_it(
    tmp_path: Path, project: Path, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for key in list(os.environ):
        if key.startswith(("INPUT_", "GITHUB_", "GITEA_", "FORGEJO_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "cli-summary.md"))
    reset_default_runner()
    try:
        flags = ["--base-url", emulator.url, "--api-key", "test-api-key", "--account-id", "test-account"]
        assert cli.main(["doctor", *flags, "--working-directory", str(project)]) == 0
        assert "[ok]   base-url" in capsys.readouterr().out
        assert cli.main(["doctor", *flags, "--working-directory", str(project), "--environment", "nope"]) == 2
    finally:
        reset_default_runner()
    env = environ(tmp_path, emulator.url, project, command="doctor", api_key="wrong")
    stream = io.StringIO()
    event = load_event(env)
    outcome = run_pipeline(load_settings(env, event=event), event, Runner(environ=env, stream=stream))
    assert outcome.exit_code == 3 and "api-key" in stream.getvalue()
    assert {r["method"] for r in emulator.state()["requests"]} == {"GET"}


def test_checklist_exit_code_is_the_first_failure() -> None:
    checks = Checklist()
    checks.ok("a", "fine")
    checks.warn("b", "odd", "look")
    assert checks.exit_code == 0
    checks.fail("c", "server", "fix it", server=True)
    checks.fail("d", "local", "fix it", server=False)
    assert checks.exit_code == 3
    checks.fail("e", "<img src=x>|`x`", "fix", server=True)
    assert "| `` <img src=x>\\|`x` `` |" in checks.markdown()  # one code span: inert, the cell kept whole


class Forge(BaseHTTPRequestHandler):
    """A forge whose token may read pull requests and comments but not deployments, and may not write."""

    methods: ClassVar[list[str]] = []

    def _answer(self) -> None:
        Forge.methods.append(self.command)
        path = self.path.split("?", 1)[0]
        routes: dict[str, tuple[int, Any]] = {
            "/repos/o/r": (200, {"full_name": "o/r", "permissions": {"admin": False, "push": False, "pull": True}}),
            "/repos/o/r/pulls": (200, []),
            "/repos/o/r/issues/5/comments": (200, []),
        }
        status, body = routes.get(path, (403, {"message": "Resource not accessible by integration"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_forge_token_is_checked_with_gets_only(tmp_path: Path, project: Path, emulator: EmulatorHandle) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Forge)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    Forge.methods = []
    try:
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"action": "opened", "pull_request": {"number": 5}}), encoding="utf-8")
        extra = {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_API_URL": f"http://127.0.0.1:{server.server_address[1]}",
        }
        code, text = doctor(tmp_path, emulator.url, project, extra=extra, github_token="forge-token")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, text  # a forge problem is a warning: it never blocks a deploy
    assert line(text, "github-token").startswith("[warn]") and "read-only" in text
    assert line(text, "github-token: pull requests").startswith("[ok]")
    assert line(text, "github-token: PR comments").startswith("[ok]")
    assert "HTTP 403" in line(text, "github-token: deployments") and "deployments: read" in text
    assert set(Forge.methods) == {"GET"} and len(Forge.methods) == 4


def test_every_emulator_variant_still_passes(tmp_path: Path, project: Path, emulator_factory: Any) -> None:
    from sgp_action.emulator.variants import VARIANT_NAMES

    emulator = emulator_factory(variants=[n for n in VARIANT_NAMES if n not in ("delete-ended-409", "sse-tail")])
    code, text = doctor(tmp_path, emulator.url, project)
    assert code == 0, text
    assert "doc-bot has deployments but no build lists it" in line(text, "agent")  # foreign-agent
    assert "agent_id" in line(text, "agent") and "set the agent-id input" in text
    # status-words: `Completed` is read as the API page's `healthy` (docs/sgp-api.md#deployment-statuses)
    assert "healthy" in line(text, "active deployments")
    assert {r["method"] for r in emulator.state()["requests"]} == {"GET"}
