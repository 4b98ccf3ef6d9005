"""Cancellation: SIGINT / SIGTERM turn into a token that every wait loop checks, and a bounded cleanup.

The Actions runner sends SIGINT, then SIGTERM 7.5 s later, then kills the process 2.5 s after that
(docs/architecture.md#cancellation). So the action must stop the remote work (cancel the build, delete the deployment
being created) within about 5 s of the first signal, and a second signal must not abort that cleanup half-way.

Design, so that no signal handler ever touches a lock another frame of the main thread may hold:

* the command runs in a worker thread (`supervise`); the main thread only waits for it;
* the first signal raises `_Interrupted` out of that wait (like KeyboardInterrupt would), the main thread then
  sets the `CancelToken`; every wait in the worker is an `Event.wait(timeout)` on the token or on an event the
  token sets, so the worker wakes at once, stops its remote work and returns its `Cancelled` outcome;
* later signals only set a flag; if the worker is stuck in blocking I/O past the grace period, the main thread
  calls `abandon()` (stop the remote work itself, write the outputs) and the process exits without it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol, TypeVar

from sgp_action.api.deadlines import Background, call_with_deadline
from sgp_action.errors import Cancelled

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Time budget from the first signal to the end of the remote cleanup (the runner kills at 10 s).
CANCEL_BUDGET_SECONDS = 5.0
#: How often the main thread gives the interpreter a chance to run a signal handler while it waits.
SIGNAL_CHECK_SECONDS = 0.05
#: Of that budget, how long the main thread lets the worker clean up by itself before abandoning it.
WORKER_GRACE_SECONDS = 3.5


class CancelToken:
    """A thread-safe cancellation flag with callbacks, checked by every wait loop of a run."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""
        #: When `cancel` was first called (`time.monotonic()`), the start of the cancel budget; None before.
        self.cancelled_at: float | None = None

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._event.is_set()

    def cancel(self, reason: str = "the job was cancelled") -> None:
        """Set the token and run every registered callback once (never call this from a signal handler)."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self.cancelled_at = time.monotonic()
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a failing callback (closing a dead stream) must not stop the others
                log.debug("cancel callback failed", exc_info=True)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` on cancellation (at once if already cancelled); returns a function that unregisters it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        callback()
        return lambda: None

    def _remove(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def check(self) -> None:
        """Raise `Cancelled` when the token is set."""
        if self._event.is_set():
            raise Cancelled(self.reason or "the job was cancelled")

    def wait(self, timeout: float | None) -> bool:
        """Wait up to `timeout` seconds; True when cancelled (returns at once on cancellation)."""
        return self._event.wait(timeout)

    def sleep(self, seconds: float) -> None:
        """Sleep, but raise `Cancelled` as soon as the token is set."""
        if seconds > 0:
            self._event.wait(seconds)
        self.check()


class _Interrupted(BaseException):
    """Raised by the signal handler out of the main thread's wait (BaseException: no library catches it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def supervise(
    work: Callable[[], T],
    token: CancelToken,
    *,
    abandon: Callable[[], T],
    grace: float = WORKER_GRACE_SECONDS,
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
) -> T:
    """Run `work()` in a worker thread while the main thread turns SIGINT/SIGTERM into `token.cancel()`.

    After a signal the worker has `grace` seconds to wind down (it sees the token in its waits); if it is still
    running then, `abandon()` is called in the main thread and its result returned. Off the main thread, signals
    cannot be handled: `work()` simply runs in the caller's thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return work()
    armed = [True]

    def handler(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            armed[0] = False
            raise _Interrupted(signum)
        # A second signal (the runner's SIGTERM) must not abort the cleanup: say so on fd 2, without locks.
        os.write(2, f"sgp-action: signal {signum} received again; still cleaning up\n".encode())

    # Made before the handlers are in place, started after: a signal at any point finds the handle.
    worker = Background(work, name="sgp-action-run")
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        try:
            worker.start()
            # In slices: a process-directed signal may land on another thread, and then only the main thread's
            # next bytecode runs the Python handler; an untimed wait would never get there.
            while not worker.wait(SIGNAL_CHECK_SECONDS):
                pass
            armed[0] = False
        except _Interrupted as interrupted:
            name = signal.Signals(interrupted.signum).name
            log.info("received %s: cancelling", name)
            token.cancel(f"the job was cancelled ({name})")
            if not worker.wait(grace):
                log.warning("the run did not stop within %.1f s; stopping the remote work directly", grace)
                return abandon()
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    return worker.result()


class RemoteCleaner(Protocol):
    """The client calls the cleanup needs (`sgp_action.api.client.SGPClient` has them)."""

    def cancel_build(self, build_id: str) -> Any: ...

    def delete_deployment(self, deployment_id: str) -> Any: ...


class RemoteWork:
    """The remote work a run has under way, so that a cancellation knows what to stop, exactly once.

    The build phase registers the build while it runs, the deploy phase the deployment while it is being created;
    both unregister once the work reached a terminal state (a healthy deployment is never deleted). While a create
    request is in flight its id is unknown: the phase registers a *finder* instead, which lists what this run
    created on the server (same hash or build, created since the request), so that a cancellation that cannot
    wait for the answer still stops it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self.build_id: str | None = None
        self.deployment_id: str | None = None
        self.build_finder: Callable[[], list[str]] | None = None
        self.deployment_finder: Callable[[], list[str]] | None = None
        self.stopped: list[str] = []
        self._done = False

    def creating_build(self, finder: Callable[[], list[str]] | None) -> None:
        """Register (or with None, forget) how to find the build a create request in flight may have made."""
        with self._lock:
            self.build_finder = finder

    def creating_deployment(self, finder: Callable[[], list[str]] | None) -> None:
        """Register (or with None, forget) how to find the deployment a create request in flight may have made."""
        with self._lock:
            self.deployment_finder = finder

    def building(self, build_id: str | None) -> None:
        """Register (or with None, forget) the build under way."""
        with self._lock:
            self.build_id = build_id

    def deploying(self, deployment_id: str | None) -> None:
        """Register (or with None, forget) the deployment being created."""
        with self._lock:
            self.deployment_id = deployment_id

    def stop(self, client: RemoteCleaner, budget: float) -> list[str]:
        """Cancel the build and/or delete the deployment under way, within `budget` seconds, once.

        Returns what was stopped, as readable phrases. A second call (the main thread abandoning a stuck worker
        while the worker itself is already cleaning up) waits for the first one, within the same budget.
        """
        deadline = time.monotonic() + budget
        if not self._stop_lock.acquire(timeout=max(budget, 0.0)):
            return list(self.stopped)
        try:
            if self._done:
                return list(self.stopped)
            self._done = True
            with self._lock:
                builds = [self.build_id] if self.build_id else []
                deployments = [self.deployment_id] if self.deployment_id else []
                build_finder = None if builds else self.build_finder
                deployment_finder = None if deployments else self.deployment_finder
            for finder, found in ((build_finder, builds), (deployment_finder, deployments)):
                if finder is not None:
                    search = call_with_deadline(finder, deadline - time.monotonic(), name="sgp-cleanup")
                    if search.error is not None:
                        log.warning("could not look for what the cut request made: %s", search.error)
                    found.extend(search.value or [])
            for build_id in builds:
                call = call_with_deadline(
                    functools.partial(client.cancel_build, build_id), deadline - time.monotonic(), name="sgp-cleanup"
                )
                self.stopped.append(f"build {build_id} {_stop_result(call, 'cancelled', 'cancel')}")
            for deployment_id in deployments:
                call = call_with_deadline(
                    functools.partial(client.delete_deployment, deployment_id),
                    deadline - time.monotonic(),
                    name="sgp-cleanup",
                )
                self.stopped.append(f"deployment {deployment_id} {_stop_result(call, 'deleted', 'delete')}")
            return list(self.stopped)
        finally:
            self._stop_lock.release()


def _stop_result(call: Background[Any], done: str, verb: str) -> str:
    """How a cancel or delete ended: done, refused (with the reason), or sent without an answer in time."""
    if call.succeeded:
        return done
    if call.error is not None:
        return f"{verb} failed ({call.error})"
    return f"{verb} requested (no answer)"
