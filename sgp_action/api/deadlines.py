"""Absolute deadlines for HTTP calls: a scope the phases set, and a watchdog that cuts a call at its deadline.

`requests` applies its read timeout to each read of the socket, so a server that sends its headers and then one
byte every few seconds keeps a call alive for ever. A phase's time limit must hold whatever the server does, so:

* `deadline_scope(t)` sets the deadline (a `time.monotonic()` value) for every call made in this context; a
  helper thread started with `run_in_context` inherits it;
* each attempt's connect and read timeouts are capped by the time left (done by the transport);
* `Watchdog` shuts the call's socket down when the deadline passes, which wakes a read or a send blocked in it.
  It finds the socket through `WatchedAdapter`, whose connections register themselves with the watchdog of the
  thread that sends the request.
* a call with no deadline (a log stream being opened) can be cut the same way by its caller: a `Watchdog` without
  a deadline around it, which another thread `cut()`s.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

T = TypeVar("T")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("sgp_deadline", default=None)
_local = threading.local()


def current_deadline() -> float | None:
    """The deadline (a `time.monotonic()` value) of the calls made in this context, or None."""
    return _deadline.get()


@contextlib.contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Calls made inside end by `deadline` (monotonic); None lifts it. Replaces, never tightens, an outer one.

    Replacing matters after a phase's deadline passed: the cancel that follows needs its own few seconds.
    """
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def within(seconds: float) -> contextlib.AbstractContextManager[None]:
    """`deadline_scope` ending `seconds` from now."""
    return deadline_scope(time.monotonic() + max(seconds, 0.0))


def run_in_context(target: Callable[[], None]) -> Callable[[], None]:
    """`target` bound to a copy of the current context: a thread running it keeps the caller's deadline."""
    context = contextvars.copy_context()
    return lambda: context.run(target)


class Background(Generic[T]):
    """`call()` in a daemon thread (`start`); the caller waits as long as it chooses, then reads the outcome.

    The thread runs in a copy of the caller's context, so the calls it makes keep the caller's deadline; with
    `seconds`, they end by that deadline instead. A call the caller stops waiting for is abandoned: it ends with the
    process (a `requests` call cannot be interrupted). The end is signalled on a bare lock, not `Thread.join` or an
    `Event`: the main thread may be woken out of `wait` by an exception from a signal handler (bpo-45274).
    """

    def __init__(
        self,
        call: Callable[[], T],
        *,
        name: str,
        seconds: float | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None
        self.done = False
        self._call, self._seconds, self._wake = call, seconds, wake
        self._finished = threading.Lock()
        self._finished.acquire()
        self._thread = threading.Thread(target=run_in_context(self._target), name=name, daemon=True)

    def start(self) -> Background[T]:
        """Start the call (separate from creating it, so a caller can hold the handle before the call runs)."""
        self._thread.start()
        return self

    def _target(self) -> None:
        try:
            if self._seconds is None:
                self.value = self._call()
            else:
                with within(self._seconds):
                    self.value = self._call()
        except BaseException as exc:  # handed to the caller
            self.error = exc
        finally:
            self.done = True
            self._finished.release()
            if self._wake is not None:
                self._wake.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the call to end; True once it has (returned or raised)."""
        if self.done:
            return True
        if self._finished.acquire(timeout=max(timeout, 0.0)):
            self._finished.release()
        return self.done

    @property
    def succeeded(self) -> bool:
        """The call returned (it did not raise, and it is not still running)."""
        return self.done and self.error is None

    def result(self) -> T:
        """The call's value, or its exception raised here; only once `done`."""
        if not self.done:
            raise RuntimeError("the call is still running")
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


def call_with_deadline(call: Callable[[], T], seconds: float, *, name: str = "sgp-call") -> Background[T]:
    """Run `call` in a daemon thread whose API calls end within `seconds`, and wait at most that long for it.

    Cleanup calls and the forge's go through this so that a slow or retrying server can never push the exit past
    the runner's kill. Check `done` (an answer came), `succeeded` and `error` on the returned handle.
    """
    background = Background(call, name=name, seconds=seconds).start()
    background.wait(seconds)
    return background


class Watchdog:
    """Shuts down the socket of the call in flight in this thread when `deadline` passes or `cut()` is called from
    another thread (arm/disarm per call); a connection the call opens after that is cut as it opens.

    Without a deadline only `cut()` fires it: a reader's way to end a call that has no deadline of its own.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self._fired = threading.Event()
        self._lock = threading.Lock()
        self._connection: HTTPConnection | None = None
        self._active = True
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self.cut)
            self._timer.daemon = True

    @property
    def fired(self) -> bool:
        """The deadline passed or `cut()` was called."""
        return self._fired.is_set()

    def __enter__(self) -> Watchdog:
        _local.watchdog = self
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _local.watchdog = None
        with self._lock:
            self._active = False
            self._connection = None
        if self._timer is not None:
            self._timer.cancel()

    def attach(self, connection: HTTPConnection) -> None:
        """Watch `connection` (called by the connection itself when it sends a request)."""
        with self._lock:
            if self._active:
                self._connection = connection
        if self.fired:
            self.cut()

    def cut(self) -> None:
        """Fire now, from any thread: the call's socket is shut down, so a read or send blocked in it returns at once.
        Does nothing once the call has ended (the watchdog was disarmed)."""
        with self._lock:
            if not self._active:
                return
            self._fired.set()
            sock: Any = getattr(self._connection, "sock", None)
        _shut(sock, socket.SHUT_RDWR)

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` (a retry's backoff), less when it fires meanwhile; True when it has fired."""
        return self._fired.wait(max(seconds, 0.0))


def current_watchdog() -> Watchdog | None:
    """The watchdog armed in this thread, if any."""
    watchdog: Watchdog | None = getattr(_local, "watchdog", None)
    return watchdog


def _shut(sock: Any, how: int) -> None:
    if sock is not None:
        # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop the TLS state that a read
        # in another thread is still using. Shutting down wakes that read (or a blocked send) at once.
        with contextlib.suppress(OSError):  # already closed: the read has ended anyway
            socket.socket.shutdown(sock, how)


def shut_response(raw: Any) -> None:
    """Shut down the socket under a urllib3 response whose body another thread may be reading, so that read ends now.

    urllib3 >= 2.3 offers `HTTPResponse.shutdown()`, which reaches the socket even when http.client has already
    dropped the connection's reference to it (a body that ends when the server closes the connection, as a build
    log stream does). Older versions: the socket of the response's public `connection`, while the body is unread.
    """
    shutdown = getattr(raw, "shutdown", None)
    if callable(shutdown):
        try:
            shutdown()
            return
        except Exception:  # released to the pool, or no socket to shut: try the connection's
            pass
    _shut(getattr(getattr(raw, "connection", None), "sock", None), socket.SHUT_RDWR)


def _register(connection: HTTPConnection) -> None:
    watchdog = current_watchdog()
    if watchdog is not None:
        watchdog.attach(connection)


def _watched(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    """`pool` whose connections register with this thread's watchdog when they connect and send a request."""
    base: Any = pool.ConnectionCls

    class Connection(base):  # type: ignore[misc]
        def request(self, *args: Any, **kwargs: Any) -> None:
            _register(self)
            super().request(*args, **kwargs)

        def connect(self) -> None:
            super().connect()
            _register(self)  # a deadline that passed while connecting cuts the new socket at once

    return type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": Connection})


_POOLS = {"http": _watched(HTTPConnectionPool), "https": _watched(HTTPSConnectionPool)}


class WatchedAdapter(HTTPAdapter):
    """An `HTTPAdapter` whose connections can be cut by this thread's `Watchdog` (direct and through a proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pool manager, with watched connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The proxy's pool manager, with watched connection pools."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager
