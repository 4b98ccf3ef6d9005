"""The build log stream: an open SSE answer of `GET /v5/builds/{id}/logs`, read as log lines as they arrive.

`SGPClient.open_build_logs` opens it; the build phase's log follower iterates it in its own thread and the worker
closes it from another (or a signal handler does), so `close()` must wake a read blocked on a quiet stream.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import requests

from sgp_action.api.deadlines import shut_response
from sgp_action.api.recorder import Recorder
from sgp_action.api.sse import EventStream, SSEEvent, log_entries
from sgp_action.errors import ApiConnectionError

_READ_SIZE = 64 * 1024


class LogStream:
    """An open build log stream (SSE): iterate it for log lines; `close()` ends the iteration from any thread."""

    def __init__(self, response: requests.Response, path: str, recorder: Recorder | None = None) -> None:
        self._response = response
        self._path = path
        self._closed = threading.Event()
        self._events = EventStream(self._chunks())
        self._recorder = recorder
        self.events = 0  # events the server sent, log lines or not
        self.lines = 0

    def _chunks(self) -> Iterator[bytes]:
        # Raw reads (not iter_lines, docs/sgp-api.md#where-sseclient-py-departs) that return whatever has arrived, so a
        # line is handed on as soon as its event is complete, whether the body is chunked or delimited by the connection
        # closing.
        raw = self._response.raw
        while not self._closed.is_set():
            try:
                data = raw.read1(_READ_SIZE) if hasattr(raw, "read1") else raw.read(_READ_SIZE)
            except Exception as exc:
                if self._closed.is_set():
                    return
                raise ApiConnectionError(f"GET {self._path}: the build log stream broke ({exc})", method="GET") from exc
            if not data:
                return
            yield data

    @property
    def last_event_id(self) -> str:
        """The stream's last event id so far (docs/sgp-api.md#the-standards-rules): pass it to `open_build_logs` when
        reconnecting."""
        return self._events.last_event_id

    def __iter__(self) -> Iterator[str]:
        """The log lines, in order, until the server closes the stream or `close()` is called."""
        for _event_id, line in self.entries():
            yield line

    def entries(self) -> Iterator[tuple[str, str]]:
        """`(event id, line)` pairs, in order; the id is empty when the server gives none
        (docs/sgp-api.md#build-log-reconnects)."""
        for entry in log_entries(self._counted()):
            if self._closed.is_set():
                return
            self.lines += 1
            yield entry

    def _counted(self) -> Iterator[SSEEvent]:
        for event in self._events:
            self.events += 1
            yield event

    def close(self) -> None:
        """End the stream; safe from another thread or a signal handler (a blocked read returns at once)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None and not self._closed.is_set():
            with contextlib.suppress(OSError, ValueError):
                recorder.stream_end(self._path, events=self.events, lines=self.lines, last_event_id=self.last_event_id)
        self._closed.set()
        # Shut the socket down first: that wakes a read blocked in another thread, whereas closing the response
        # alone neither wakes it nor returns (the reader holds the buffer's lock) on a close-delimited body.
        shut_response(self._response.raw)
        with contextlib.suppress(Exception):
            self._response.close()

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
