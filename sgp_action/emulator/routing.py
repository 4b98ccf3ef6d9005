"""The emulator's HTTP side: the server and its state, and each request up to its endpoint.

`RequestHandler` applies the injected faults, checks the auth headers, routes by method and path (`ROUTES`; 405 for
a known path with another method), reads bodies within bounds and writes JSON answers; it also answers the
`/_emulator/*` control endpoints (no auth, no faults). The API's endpoints themselves are in
`sgp_action.emulator.server`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from sgp_action.emulator.config import EmulatorConfig
from sgp_action.emulator.faults import FaultInjector, FaultSpecError, parse_faults
from sgp_action.emulator.multipart import BodyReader
from sgp_action.emulator.records import HttpError
from sgp_action.emulator.state import Store
from sgp_action.emulator.variants import VariantSpecError, parse_variants

log = logging.getLogger(__name__)
_Host = TypeVar("_Host", bound="EmulatorHost")

MAX_JSON_BODY = 16 * 1024 * 1024
DRAIN_CAP = 64 * 1024 * 1024  # read and drop at most this much of a refused body; beyond it, cut the connection
ID = r"([A-Za-z0-9_.-]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/v5/builds"), "create_build"),
    ("GET", re.compile(r"/v5/builds"), "list_builds"),
    ("GET", re.compile(r"/v5/builds/undeployed"), "undeployed"),
    ("GET", re.compile(rf"/v5/builds/{ID}"), "get_build"),
    ("POST", re.compile(rf"/v5/builds/{ID}/cancel"), "cancel_build"),
    ("GET", re.compile(rf"/v5/builds/{ID}/logs"), "build_logs"),
    ("POST", re.compile(r"/v5/agentex/deployments"), "create_deploy"),
    ("GET", re.compile(r"/v5/agentex/deployments"), "list_deploys"),
    ("GET", re.compile(rf"/v5/agentex/deployments/{ID}"), "get_deploy"),
    ("DELETE", re.compile(rf"/v5/agentex/deployments/{ID}"), "delete_deploy"),
    ("GET", re.compile(rf"/v5/agentex/deployments/{ID}/logs"), "deploy_logs"),
]


class EmulatorHost(ThreadingHTTPServer):
    """A threaded HTTP server holding the emulator's store and fault injector, serving one handler class."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: EmulatorConfig, handler: type[RequestHandler]) -> None:
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.config = config
        self.store = Store(config)
        self.faults = FaultInjector(parse_faults(config.faults), seed=config.seed)
        # Furthest build-log line delivered per build, for the sse-drop-after fault.
        self.sse_delivered: dict[str, int] = {}
        self.upload_dir = tempfile.mkdtemp(prefix="sgp-emulator-")
        self._thread: threading.Thread | None = None
        super().__init__((config.host, config.port), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection with Nagle's algorithm off.

        The handler writes headers and body separately; with Nagle on, the body of an answer on a kept-alive
        connection waits for the client's delayed ACK of the headers (about 40 ms a request).
        """
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. http://127.0.0.1:41234."""
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self: _Host) -> _Host:
        """Serve in a background thread (for tests and the demo) and return self."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end open log streams, and delete stored uploads."""
        self.store.stop()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()
        shutil.rmtree(self.upload_dir, ignore_errors=True)


class RequestHandler(BaseHTTPRequestHandler):
    """One HTTP request, up to its endpoint: faults, auth, routing, bodies and JSON answers like SGP's FastAPI
    service (`{"detail": ...}` on errors). A subclass holds the endpoints, one `_<name>` method per route of `ROUTES`,
    each called with the account, the key and the path's ids."""

    protocol_version = "HTTP/1.1"
    # An idle kept-alive connection must not pin a thread forever once its client has gone.
    timeout = 300
    server: EmulatorHost

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    # --- plumbing ---------------------------------------------------------------------------------------

    def _handle(self) -> None:
        self._status: int | str = 0
        self._recorded = False
        self._body: BodyReader | None = None
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        self._path = path
        self._query = dict(parse_qsl(url.query, keep_blank_values=True))
        if path.startswith("/_emulator/"):
            self._internal(path)
            return
        try:
            slow, forced = self.server.faults.before_request()
            if slow:
                time.sleep(slow)
            if forced == 429:
                raise HttpError(429, "rate limited (emulator fault rate-limit)", {"Retry-After": "1"})
            if forced == 500:
                raise HttpError(500, "internal server error (emulator fault http-500)")
            self._route(path)
        except HttpError as exc:
            try:
                self._send_json(exc.status, {"detail": exc.detail}, exc.headers)
            except (BrokenPipeError, ConnectionResetError):  # the client left mid-body (a cancelled upload)
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self._status = self._status or "disconnected"
        finally:
            self._record()

    def _record(self) -> None:
        # Recorded before the answer is written (see _send_json), so a client that asks /_emulator/state right
        # after its answer arrived always finds its request there.
        if not self._recorded:
            self._recorded = True
            entry = {"method": self.command, "path": self._path, "status": self._status, "query": self._query}
            self.server.store.record_request(entry)

    def _route(self, path: str) -> None:
        allowed = False
        for method, pattern, name in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            allowed = True
            if method == self.command:
                account, api_key = self._auth()
                getattr(self, "_" + name)(account, api_key, *[unquote(g) for g in match.groups()])
                return
        raise HttpError(405 if allowed else 404, "Method Not Allowed" if allowed else "Not Found")

    def _auth(self) -> tuple[str, str]:
        key = self.headers.get("x-api-key") or ""
        account = self.headers.get("x-selected-account-id") or ""
        if not key or not account:
            missing = [h for h, v in (("x-api-key", key), ("x-selected-account-id", account)) if not v]
            raise HttpError(401, f"missing {' and '.join(missing)} header")
        config = self.server.config
        if config.api_key is not None and key != config.api_key:
            raise HttpError(401, "invalid API key")
        if config.account_id is not None and account != config.account_id:
            raise HttpError(403, f"this API key has no access to account {account!r}")
        return account, key

    def _reader(self) -> BodyReader:
        if self._body is None:
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            length = int(self.headers.get("Content-Length") or 0) if not chunked else None
            self._body = BodyReader(cast(IO[bytes], self.rfile), length, chunked)
        return self._body

    def _content_length(self) -> int | None:
        try:
            return int(self.headers["Content-Length"]) if self.headers.get("Content-Length") else None
        except ValueError:
            raise HttpError(400, "bad Content-Length header") from None

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        # A body left unread would be parsed as the next request on this keep-alive connection.
        if not self._reader().discard(DRAIN_CAP):
            self.close_connection = True
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._status = status
        if not self._path.startswith("/_emulator/"):
            self._record()
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _json_body(self) -> Any:
        length = self._content_length()
        if length is not None and length > MAX_JSON_BODY:
            raise HttpError(413, f"the JSON body is over {MAX_JSON_BODY} bytes")
        reader, chunks, size = self._reader(), [], 0
        while chunk := reader.read():
            size += len(chunk)
            if size > MAX_JSON_BODY:
                self.close_connection = True
                raise HttpError(413, f"the JSON body is over {MAX_JSON_BODY} bytes")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None

    # --- /_emulator/* (no auth, no faults) --------------------------------------------------------------

    def _internal(self, path: str) -> None:
        try:
            if path == "/_emulator/state" and self.command == "GET":
                self._send_json(200, self.server.store.snapshot())
            elif path == "/_emulator/faults" and self.command == "GET":
                self._send_json(200, {"faults": self.server.faults.current.specs()})
            elif path == "/_emulator/faults" and self.command == "POST":
                specs = self._json_body()
                if not isinstance(specs, list):
                    raise HttpError(400, 'send a JSON list of fault specs, e.g. ["rate-limit=3"]; [] clears')
                try:
                    faults = parse_faults(specs)
                except FaultSpecError as exc:
                    raise HttpError(400, str(exc)) from None
                self.server.faults.replace(faults)
                self._send_json(200, {"faults": faults.specs()})
            elif path == "/_emulator/variants" and self.command == "GET":
                self._send_json(200, {"variants": self.server.store.variants.specs()})
            elif path == "/_emulator/variants" and self.command == "POST":
                names = self._json_body()
                try:
                    self.server.store.variants.replace(parse_variants(names if isinstance(names, list) else [names]))
                except VariantSpecError as exc:
                    raise HttpError(400, f'{exc}; send a JSON list of names, e.g. ["no-sort"]; [] clears') from None
                self._send_json(200, {"variants": self.server.store.variants.specs()})
            else:
                raise HttpError(404, "Not Found")
        except HttpError as exc:
            self._send_json(exc.status, {"detail": exc.detail}, exc.headers)
