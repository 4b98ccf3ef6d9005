"""The emulator's API endpoints (builds, the build-log SSE stream, deployments) and `EmulatorServer`, which serves
them; faults, auth, routing and bodies are `sgp_action.emulator.routing`'s."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

from sgp_action.emulator.builds import BuildRequestError, parse_build_form
from sgp_action.emulator.config import EmulatorConfig
from sgp_action.emulator.deploys import DeployRequestError, parse_deploy_body
from sgp_action.emulator.multipart import MultipartError, TooLarge, boundary_of, parse_form
from sgp_action.emulator.records import HttpError, int_param
from sgp_action.emulator.routing import DRAIN_CAP, EmulatorHost, RequestHandler
from sgp_action.emulator.variants import sse_frames, sse_start, sse_with_ids

TERMINAL_BUILD = ("success", "failed", "cancelled", "timed_out", "error")
#: The sse-hold-open fault keeps a finished build-log stream open this long at most.
HOLD_OPEN_SECONDS = 300.0


class EmulatorHandler(RequestHandler):
    """The API's endpoints: builds (with the build-log SSE stream) and deployments, answered from the store."""

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


class EmulatorServer(EmulatorHost):
    """The emulator: a threaded HTTP server answering SGP's Build and Deploy API from its store."""

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__(config, EmulatorHandler)
