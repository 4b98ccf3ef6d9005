"""A hostile HTTP server on 127.0.0.1 for deadline tests: it drips or holds back chosen answers.

`HostileServer(rules, upstream=None)`: each request whose `METHOD /path` fully matches a rule's pattern gets that
rule's behaviour; any other request is forwarded to `upstream` (an emulator) and its answer relayed, or answered
404 without one. Behaviours:

* `drip`: headers announcing a 1000-byte JSON body, then one byte every `drip_seconds`;
* `hang`: the request is read, then no answer at all until the server closes;
* `swallow`: the request is forwarded (the emulator acts on it), its answer never relayed;
* `503`: a 503 answer at once.

Every request line is recorded in `seen`; `close()` ends held and dripping answers.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

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
