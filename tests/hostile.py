"""Small hostile HTTP servers on 127.0.0.1 (real sockets, real HTTP), and a run of the action against one.

`serve(respond)` answers every request with a function of the tests' own. `HostileServer(rules, upstream=None)`
sits in front of an emulator: each request whose `METHOD /path` fully matches a rule's pattern gets that rule's
behaviour, any other is forwarded to `upstream` and its answer relayed (404 without one). Behaviours:

* `drip`: headers announcing a 1000-byte JSON body, then one byte every `drip_seconds`;
* `hang`: the request is read, then no answer at all until the server closes;
* `swallow`: the request is forwarded (the emulator acts on it), its answer never relayed;
* `503`: a 503 answer at once.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
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

    with listening(Handler) as hostile.url:
        yield hostile


@contextmanager
def listening(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on an ephemeral 127.0.0.1 port in a background thread until the block ends; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
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
    from sgp_action.ci.event import load_event
    from sgp_action.ci.runner import Runner
    from sgp_action.demo import parse_output_file
    from sgp_action.run.pipeline import run_pipeline
    from sgp_action.run.settings import load_settings

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


# --- a server in front of an emulator, with behaviours per request --------------------------------------------

_HOP_HEADERS = {"connection", "transfer-encoding", "content-length", "keep-alive", "host"}


class HostileServer:
    """A threading HTTP server applying `rules` ({regex of 'METHOD /path': 'drip' | 'hang' | 'swallow' | '503'})."""

    def __init__(self, rules: dict[str, str], *, upstream: str | None = None, drip_seconds: float = 1.0) -> None:
        self.rules = [(re.compile(pattern), behaviour) for pattern, behaviour in rules.items()]
        self.upstream = urlsplit(upstream) if upstream else None
        assert self.upstream is None or self.upstream.hostname == "127.0.0.1", "tests talk only to 127.0.0.1"
        self.drip_seconds = drip_seconds
        self.seen: list[str] = []
        self.stopping = threading.Event()
        #: Set when a request got a hostile behaviour (the client is now waiting on it).
        self.hit = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End every held or dripping answer and stop serving."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def behaviour(self, line: str) -> str | None:
        """The behaviour for `METHOD /path`, or None to forward."""
        return next((what for pattern, what in self.rules if pattern.fullmatch(line)), None)


def _handler(owner: HostileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            line = f"{self.command} {urlsplit(self.path).path}"
            owner.seen.append(line)
            behaviour = owner.behaviour(line)
            if behaviour is not None:
                owner.hit.set()
            if behaviour == "swallow":
                self._forward(body, relay=False)
            if behaviour in ("hang", "swallow"):
                owner.stopping.wait(120)
                self.close_connection = True
            elif behaviour == "drip":
                self._drip()
            elif behaviour == "503":
                self._answer(503, b'{"detail": "unavailable"}')
            elif owner.upstream is not None:
                self._forward(body)
            else:
                self._answer(404, b'{"detail": "not here"}')

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drip(self) -> None:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            started = time.monotonic()
            try:
                while not owner.stopping.wait(owner.drip_seconds) and time.monotonic() - started < 120:
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:
                return  # the client gave up: what the test wants

        def _forward(self, body: bytes, *, relay: bool = True) -> None:
            assert owner.upstream is not None and owner.upstream.port is not None
            upstream = http.client.HTTPConnection("127.0.0.1", owner.upstream.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            if not relay:
                answer.read()
                upstream.close()
                return
            # Relayed close-delimited, so that a log stream arrives line by line as the emulator writes it.
            self.close_connection = True
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                while chunk := answer.read1(65536):
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:
                pass
            finally:
                upstream.close()

    return Handler
