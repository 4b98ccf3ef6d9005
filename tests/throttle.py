"""A TCP proxy on 127.0.0.1 for cancellation tests: a slow uplink, and answers held back at will.

The action talks to the proxy (its base-url), the proxy to the emulator. Client-to-server bytes are forwarded at
`upload_rate` bytes per second, so that uploading a context of some tens of MB takes seconds while packaging it (with
incompressible data) takes a fraction of one; small kernel buffers keep the client's view of its progress close to
what actually went through. With `hold_marker`, the first answer on a connection whose request bytes contained the
marker is held until `release()`: the request was fully sent and handled, but its answer is not back yet; `cut()`
drops it instead, closing the connection (the answer is lost).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit

_CHUNK = 16 * 1024
_BUFFER = 64 * 1024  # a fixed receive window: the kernel would otherwise buffer megabytes of the upload


class ThrottleProxy:
    """Forward 127.0.0.1:<port> to `target_url`'s host and port, one pair of threads per connection."""

    def __init__(self, target_url: str, *, upload_rate: float | None = None, hold_marker: bytes | None = None) -> None:
        target = urlsplit(target_url)
        assert target.hostname == "127.0.0.1" and target.port, "tests talk only to 127.0.0.1"
        self.target = (target.hostname, target.port)
        self.upload_rate = upload_rate
        self.hold_marker = hold_marker
        #: Set when an answer is being held back; `release()` lets it (and later ones) through.
        self.holding = threading.Event()
        self._released = threading.Event()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)  # inherited by accepted sockets
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, name="throttle-accept", daemon=True).start()

    def __enter__(self) -> ThrottleProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def release(self) -> None:
        """Let held answers through."""
        self._released.set()

    def cut(self) -> None:
        """Drop held answers instead: their connections close without them (an answer lost on the way)."""
        self._cut.set()
        self._released.set()

    def close(self) -> None:
        """Stop accepting, release what is held and close every connection."""
        self._closed.set()
        self._released.set()
        with self._lock:
            sockets, self._sockets = [self._listener, *self._sockets], []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
            self._track(client)
            self._track(server)
            marked = threading.Event()
            up, down = self._uplink(marked), self._downlink(marked)
            threading.Thread(target=self._pump, args=(client, server, up), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, down), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, before_send: Callable[[bytes], bool]) -> None:
        """Copy `source` to `sink` until either closes, or `before_send` says to stop."""
        try:
            while chunk := source.recv(_CHUNK):
                if not before_send(chunk):
                    return
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def _uplink(self, marked: threading.Event) -> Callable[[bytes], bool]:
        """Client to server: look for the hold marker, and pace the bytes at `upload_rate`."""
        tail = b""
        due = 0.0  # when the bytes forwarded so far may have gone out at upload_rate

        def before_send(chunk: bytes) -> bool:
            nonlocal tail, due
            if self.hold_marker is not None and not marked.is_set():
                window = tail + chunk
                if self.hold_marker in window:
                    marked.set()
                tail = window[-len(self.hold_marker) :]
            if self.upload_rate:
                # No credit for idle time (a kept-alive connection must not burst), no drift from oversleeping.
                due = max(due, time.monotonic()) + len(chunk) / self.upload_rate
                delay = due - time.monotonic()
                if delay > 0 and self._closed.wait(delay):
                    return False
            return True

        return before_send

    def _downlink(self, marked: threading.Event) -> Callable[[bytes], bool]:
        """Server to client: hold the answer of a marked connection until `release()` (or drop it on `cut()`)."""

        def before_send(chunk: bytes) -> bool:
            if marked.is_set() and not self._released.is_set():
                self.holding.set()
                self._released.wait()
                return not (self._closed.is_set() or self._cut.is_set())
            return not self._closed.is_set()

        return before_send
