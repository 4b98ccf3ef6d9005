"""Small hostile HTTP servers on 127.0.0.1 (real sockets, real HTTP), and a run of the action against one."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

Respond = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Hostile:
    """A running server: its base URL and the `METHOD path?query` of every request it received."""

    url: str
    requests: list[str] = field(default_factory=list)


@contextmanager
def serve(respond: Respond) -> Iterator[Hostile]:
    """Serve every request with `respond(handler)` until the block ends."""
    hostile = Hostile("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            hostile.requests.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading
                respond(self)

        do_GET = do_POST = do_DELETE = _any

        def handle(self) -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that hung up mid-answer
                super().handle()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    hostile.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hostile
    finally:
        server.shutdown()
        server.server_close()


def send_json(handler: BaseHTTPRequestHandler, body: Any, status: int = 200) -> None:
    """One JSON answer with its length."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def send_bytes(handler: BaseHTTPRequestHandler, data: bytes, *, encoding: str = "gzip") -> None:
    """One answer of raw bytes with a Content-Encoding (compressed or not, as the caller made them)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Encoding", encoding)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def preview(deployment_id: str, label: str = "pr-7") -> dict[str, Any]:
    """A healthy preview record as the API lists it."""
    return {
        "id": deployment_id,
        "status": "HEALTHY",
        "preview_label": label,
        "expires_at": "2999-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
    }


def cycling_pages(handler: BaseHTTPRequestHandler) -> None:
    """A deployment list whose cursors cycle A -> B -> A with `has_more` always true; other calls succeed."""
    if handler.command != "GET":
        send_json(handler, {**preview("x"), "status": "DELETED"})
        return
    after = parse_qs(urlsplit(handler.path).query).get("starting_after", [""])[0]
    send_json(handler, {"items": [preview("B" if after == "A" else "A")], "has_more": True})


@dataclass
class ActionRun:
    """What one run of the action produced."""

    exit_code: int
    log: str
    outputs: dict[str, str]
    summary: str


def run_action(url: str, tmp_path: Path, *, environ: dict[str, str] | None = None, **inputs: str) -> ActionRun:
    """`sgp-action run` in this process on a schedule event against `url`, with `environ` added to its variables."""
    from sgp_action.demo import parse_output_file
    from sgp_action.event import load_event
    from sgp_action.pipeline import run_pipeline
    from sgp_action.runner import Runner
    from sgp_action.settings import load_settings

    event_path, output, summary = tmp_path / "event.json", tmp_path / "output", tmp_path / "summary.md"
    event_path.write_text(json.dumps({"schedule": "0 3 * * *"}), encoding="utf-8")
    output.write_text("", encoding="utf-8")
    summary.write_text("", encoding="utf-8")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "schedule",
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_REPOSITORY": "octo/mono",
        "INPUT_BASE_URL": url,
        "INPUT_API_KEY": "key",
        "INPUT_ACCOUNT_ID": "acct",
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        **(environ or {}),
    }
    event = load_event(env)
    stream = io.StringIO()
    runner = Runner(environ=env, stream=stream)
    outcome = run_pipeline(load_settings(env, event=event, cwd=tmp_path), event, runner)
    outputs = parse_output_file(output.read_text(encoding="utf-8"))
    return ActionRun(outcome.exit_code, stream.getvalue(), outputs, summary.read_text(encoding="utf-8"))
