"""api.logstream: the build log stream read as lines on real local servers: a close from another thread, a stream
broken mid-body, an endless line."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from sgp_action.api.client import SGPClient
from sgp_action.errors import ApiConnectionError
from tests.hostile import serve


class _SlowSSE(BaseHTTPRequestHandler):
    """Streams SSE in awkward pieces, waiting for the test between events. `chunked` picks the framing."""

    chunked = True
    ack = threading.Event()  # the test saw the first line
    release = threading.Event()  # the test is over: end the response
    saw_ack: ClassVar[list[bool]] = []

    def setup(self) -> None:
        super().setup()
        if type(self).chunked:
            self.protocol_version = "HTTP/1.1"

    def send(self, data: bytes) -> None:
        if type(self).chunked:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if type(self).chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.send(b'data: {"line": "first"}\r')  # the CR here and its LF in the next piece
        self.send(b"\n\r\n")
        # The client must have handed the first line on before anything more comes (live logs).
        type(self).saw_ack.append(type(self).ack.wait(30))
        try:
            self.send(b'data: {"line": "second"}\n\n')
            type(self).release.wait(60)  # then stay quiet, far longer than the test waits for close() to act
            if type(self).chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_log_stream_close_from_another_thread(local_server: Callable[..., str], chunked: bool) -> None:
    _SlowSSE.chunked = chunked
    _SlowSSE.ack = threading.Event()
    _SlowSSE.release = threading.Event()
    _SlowSSE.saw_ack = []
    url = local_server(_SlowSSE)
    client = SGPClient.for_url(url, "key", "acct", read_timeout=0.2)  # a quiet stream outlives the read timeout
    stream = client.open_build_logs("b1")
    lines: list[str] = []
    got_second = threading.Event()
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            for line in stream:
                lines.append(line)
                if line == "first":
                    _SlowSSE.ack.set()
                else:
                    got_second.set()
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert got_second.wait(20)
    threading.Event().wait(0.5)  # longer than the read timeout, while the reader is blocked on a quiet socket
    assert reader.is_alive()
    stream.close()
    reader.join(10)
    closed_it = not reader.is_alive()
    _SlowSSE.release.set()
    client.close()
    assert closed_it, "close() did not end the iteration"
    assert failures == []
    assert lines == ["first", "second"]
    assert _SlowSSE.saw_ack == [True]


class _BrokenSSE(BaseHTTPRequestHandler):
    """Sends one event, then half a chunk, then hangs up: a stream broken mid-body."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        event = b'data: {"line": "before the break"}\n\n'
        self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        self.wfile.write(b'64\r\ndata: {"line": "lost')
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_broken_stream_raises_after_the_lines_it_delivered(local_server: Callable[..., str]) -> None:
    lines: list[str] = []
    broke = pytest.raises(ApiConnectionError, match="GET /v5/builds/b1/logs: the build log stream broke")
    with (
        SGPClient.for_url(local_server(_BrokenSSE), "key", "acct") as client,
        client.open_build_logs("b1") as stream,
        broke,
    ):
        for line in stream:
            lines.append(line)
    assert lines == ["before the break"]


def _endless_line_sse(handler: BaseHTTPRequestHandler) -> None:
    """A log stream holding a 16 MiB line with no line end between two good events, then closing."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(b'data: {"line": "before"}\n\ndata: {"line": "')
    piece = b"a" * 65536
    for _ in range(256):
        handler.wfile.write(piece)
    handler.wfile.write(b'"}\n\ndata: {"line": "after"}\n\n')


@pytest.mark.timeout(20)
def test_an_endless_sse_line_is_dropped_not_buffered(caplog: pytest.LogCaptureFixture) -> None:
    with serve(_endless_line_sse) as server, SGPClient.for_url(server.url, "key", "acct") as client:
        tracemalloc.start()
        try:
            with client.open_build_logs("b1") as stream:
                assert list(stream) == ["before", "after"]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 8 * 2**20  # the line was 16 MiB; at most 1 MiB of it is ever held
    assert "the build log stream sent a line over 1048576 bytes: it is dropped" in caplog.text
