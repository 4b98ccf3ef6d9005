"""The emulator's HTTP server: routing, auth, faults, multipart uploads, JSON answers and the build-log SSE stream."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from sgp_action.emulator.builds import BuildRequestError, parse_build_form
from sgp_action.emulator.config import EmulatorConfig
from sgp_action.emulator.deploys import DeployRequestError, parse_deploy_body
from sgp_action.emulator.faults import FaultInjector, FaultSpecError, parse_faults
from sgp_action.emulator.multipart import BodyReader, MultipartError, TooLarge, boundary_of, parse_form
from sgp_action.emulator.records import HttpError, int_param
from sgp_action.emulator.state import Store
from sgp_action.emulator.variants import VariantSpecError, parse_variants, sse_frames, sse_start, sse_with_ids

log = logging.getLogger(__name__)

MAX_JSON_BODY = 16 * 1024 * 1024
DRAIN_CAP = 64 * 1024 * 1024  # read and drop at most this much of a refused body; beyond it, cut the connection
TERMINAL_BUILD = ("success", "failed", "cancelled", "timed_out", "error")
#: The sse-hold-open fault keeps a finished build-log stream open this long at most.
HOLD_OPEN_SECONDS = 300.0
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


class EmulatorServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the emulator's store and fault injector."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: EmulatorConfig) -> None:
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.config = config
        self.store = Store(config)
        self.faults = FaultInjector(parse_faults(config.faults), seed=config.seed)
        # Furthest build-log line delivered per build, for the sse-drop-after fault.
        self.sse_delivered: dict[str, int] = {}
        self.upload_dir = tempfile.mkdtemp(prefix="sgp-emulator-")
        self._thread: threading.Thread | None = None
        super().__init__((config.host, config.port), EmulatorHandler)

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

    def start(self) -> EmulatorServer:
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


class EmulatorHandler(BaseHTTPRequestHandler):
    """One HTTP request; answers JSON like SGP's FastAPI service (`{"detail": ...}` on errors)."""

    protocol_version = "HTTP/1.1"
    # An idle kept-alive connection must not pin a thread forever once its client has gone.
    timeout = 300
    server: EmulatorServer

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

    # --- builds -----------------------------------------------------------------------------------------

    def _create_build(self, account: str, api_key: str) -> None:
        limit = self.server.config.max_upload_bytes
        length = self._content_length()
        too_large = f"context_archive is over the {limit} byte limit"
        if length is not None and length > limit + 1024 * 1024:
            self.close_connection = True  # refuse without reading hundreds of megabytes
            raise HttpError(413, too_large)
        try:
            boundary = boundary_of(self.headers.get("Content-Type") or "")
            form = parse_form(self._reader(), boundary, self.server.upload_dir, limit)
        except MultipartError as exc:
            raise HttpError(400, str(exc)) from None
        except TooLarge:
            raise HttpError(413, too_large) from None
        try:
            request = parse_build_form(form)
            view = self.server.store.create_build(request, account, api_key)
        except BuildRequestError as exc:
            form.cleanup()
            raise HttpError(400, str(exc)) from None
        except HttpError:
            form.cleanup()
            raise
        if self.server.faults.take_lose_create():
            # lose-create-response: stored, but the client never hears back (a timeout or reset in real life).
            self.close_connection = True
            self._status = "connection-cut"
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send_json(200, view)

    def _list_builds(self, account: str, api_key: str) -> None:
        self._send_json(200, self.server.store.list_builds(self._query, account))

    def _undeployed(self, account: str, api_key: str) -> None:
        self._send_json(200, self.server.store.undeployed(account))

    def _get_build(self, account: str, api_key: str, build_id: str) -> None:
        self._send_json(200, self.server.store.get_build(build_id, account))

    def _cancel_build(self, account: str, api_key: str, build_id: str) -> None:
        self._send_json(202, self.server.store.cancel_build(build_id, account))

    def _build_logs(self, account: str, api_key: str, build_id: str) -> None:
        store = self.server.store
        with store.lock:
            rec = store.get_build_record(build_id, account)
        self._reader().discard(DRAIN_CAP)
        # Chunked framing, as uvicorn streams, so that clients get each event as soon as it is written;
        # the connection closes with the stream (docs/sgp-api.md#build-logs: no end marker, the server just closes).
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self._status = 200
        drop_after = self.server.faults.current.sse_drop_after
        variants = store.variants.current
        with_ids = sse_with_ids(variants)
        track = bool(drop_after) or with_ids
        # sse-drop-after=N models a flaky proxy: every connection replays from the first line (unless a variant
        # says where a reconnect starts) and is cut N lines past the furthest line any earlier connection
        # delivered, so a client that reconnects and skips what it already printed still receives every line.
        with store.lock:
            delivered = self.server.sse_delivered.get(build_id, 0)
            reconnect = build_id in self.server.sse_delivered
        limit = delivered + drop_after if drop_after else 0
        sent = sse_start(variants, self.headers.get("Last-Event-ID"), delivered, reconnect)
        while True:
            with store.changed:
                now = time.monotonic()
                status, lines, _, _ = store.progress(rec, now)
                new = lines[sent:]
                if not new and status not in TERMINAL_BUILD and not store.stopping:
                    wait = store.next_change(rec, now)
                    store.changed.wait(timeout=0.5 if wait is None else min(max(wait, 0.001), 0.5))
                    continue
            if drop_after:
                new = new[: limit - sent]
            if new:
                frames = sse_frames(new, sent, with_ids)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frames), frames))
                self.wfile.flush()
            sent += len(new)
            if track:
                with store.lock:
                    self.server.sse_delivered[build_id] = max(self.server.sse_delivered.get(build_id, 0), sent)
            if (drop_after and sent >= limit) or store.stopping or (status in TERMINAL_BUILD and sent >= len(lines)):
                if self.server.faults.current.sse_hold_open and not store.stopping:
                    self._hold_open()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return

    def _hold_open(self) -> None:
        """The sse-hold-open fault: keep the finished stream open, silent, until the emulator stops (5 min at most)."""
        store = self.server.store
        give_up = time.monotonic() + HOLD_OPEN_SECONDS
        with store.changed:
            while not store.stopping and time.monotonic() < give_up:
                store.changed.wait(timeout=0.5)

    # --- deployments ------------------------------------------------------------------------------------

    def _create_deploy(self, account: str, api_key: str) -> None:
        body = self._json_body()
        try:
            request = parse_deploy_body(body, datetime.now(timezone.utc))
        except DeployRequestError as exc:
            raise HttpError(400, str(exc)) from None
        fail = self.server.faults.current.deploy_fail
        self._send_json(200, self.server.store.create_deploy(request, account, api_key, fail))

    def _list_deploys(self, account: str, api_key: str) -> None:
        self._send_json(200, self.server.store.list_deploys(self._query, account))

    def _get_deploy(self, account: str, api_key: str, deploy_id: str) -> None:
        self._send_json(200, self.server.store.get_deploy(deploy_id, account))

    def _delete_deploy(self, account: str, api_key: str, deploy_id: str) -> None:
        self._send_json(200, self.server.store.delete_deploy(deploy_id, account))

    def _deploy_logs(self, account: str, api_key: str, deploy_id: str) -> None:
        limit = int_param(self._query, "limit", 100, 1, 500)
        cursor = self._query.get("cursor") or self._query.get("after_id") or ""
        self._send_json(200, self.server.store.deploy_logs(deploy_id, account, cursor, limit))
