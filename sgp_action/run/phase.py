"""What every phase shares: its environment (API, console, token, report, remote work) and safe creates.

The build, deploy and teardown phases all run in a `PhaseEnv`; `PhaseBase` adds the time limit, the registration
of a create request in flight for cancellation, and create retries that never make a duplicate
(docs/sgp-api.md#creates-are-not-idempotent).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sgp_action.api.deadlines import Background, within
from sgp_action.ci.report import Report
from sgp_action.durations import format_duration
from sgp_action.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    Cancelled,
    OperationTimeout,
    RequestDeadlineError,
    ServerError,
)
from sgp_action.run.cancel import CancelToken, RemoteWork

if TYPE_CHECKING:
    from sgp_action.api.protocol import ApiClient

R = TypeVar("R")

#: How many log lines a failure message carries.
TAIL_LINES = 20
#: How far a lookup by name reads when an older server ignores the filter
#: (docs/sgp-api.md#older-servers-ignore-unknown-filters).
AGENT_SCAN_LIMIT = 200
#: Errors after which a create may or may not have happened on the server (docs/sgp-api.md#creates-are-not-idempotent),
#: and how often to try in all.
AMBIGUOUS_ERRORS = (ServerError, ApiConnectionError, ApiTimeoutError)
CREATE_ATTEMPTS = 3
#: After a cancellation, how long a create request in flight may still take to answer (within the 5 s budget).
CREATE_ANSWER_GRACE = 2.0
#: After the time limit passed: how long the cancel of a build (or the search for what a cut create made, and its
#: stop) may take. Short: the run is already late, and the runner's own job timeout may be near.
STOP_SECONDS = 4.0
#: Tolerated difference between this machine's clock and the server's when matching "created since".
CLOCK_SKEW = timedelta(seconds=30)


class Console(Protocol):
    """The part of `sgp_action.ci.runner.Runner` the phases print through."""

    def info(self, text: str) -> None: ...

    def server_line(self, text: str) -> None: ...

    def warning(self, text: str, *, title: str | None = None, file: str | None = None) -> None: ...

    def group(self, title: str) -> Any: ...


@dataclass
class PhaseEnv:
    """What every phase works with: the API, the console, the cancellation token, the report, the remote work."""

    client: ApiClient
    console: Console
    token: CancelToken
    report: Report
    remote: RemoteWork
    poll_interval: float = 5.0
    clock: Callable[[], float] = time.monotonic


class PhaseBase:
    """A phase with a time limit, working in a `PhaseEnv`.

    The limit counts from the phase's first remote step (the create, upload included) and binds every request
    made within `bounded()`: none outlives it, however the server behaves.
    """

    #: The input that sets `timeout`, named in messages.
    timeout_name = "timeout"

    def __init__(self, env: PhaseEnv, *, timeout: float) -> None:
        self.env = env
        self.client = env.client
        self.console = env.console
        self.token = env.token
        self.report = env.report
        self.remote = env.remote
        self.poll_interval = max(env.poll_interval, 0.05)
        self.timeout = timeout
        self.clock = env.clock
        self._deadline: float | None = None

    @property
    def deadline(self) -> float:
        """When the phase's time limit passes, on `clock`; fixed at the first reading."""
        if self._deadline is None:
            self._deadline = self.clock() + self.timeout
        return self._deadline

    def bounded(self) -> contextlib.AbstractContextManager[None]:
        """A scope whose API calls end by the phase's deadline (RequestDeadlineError when it cuts one)."""
        return within(self.deadline - self.clock())

    @contextlib.contextmanager
    def limited(self, what: str) -> Iterator[None]:
        """`bounded()`, and a call cut at the deadline becomes an OperationTimeout saying that `what` took too long."""
        with self.bounded():
            try:
                yield
            except RequestDeadlineError as exc:
                raise OperationTimeout(
                    f"{what} did not end within {self.timeout_name} ({format_duration(self.timeout)}): {exc}. "
                    f"Raise {self.timeout_name} if the server needs longer."
                ) from exc

    @contextlib.contextmanager
    def in_flight(
        self, register: Callable[[Callable[[], list[str]] | None], None], finder: Callable[[], list[str]]
    ) -> Iterator[None]:
        """Register `finder` with `register` (a `RemoteWork.creating_*`) while a create request is in flight.

        Forgotten afterwards, except when the run is cancelled meanwhile: the request may have made something on
        the server even though its answer was cut or never read (docs/sgp-api.md#creates-are-not-idempotent), and the
        run's cleanup needs the finder to find it and stop it.
        """
        register(finder)
        try:
            yield
        except (Cancelled, KeyboardInterrupt):
            raise
        except RequestDeadlineError as exc:
            # Cut at the time limit: the body may have arrived and become a record whose id we never got.
            stopped = self.remote.stop(self.client, STOP_SECONDS)
            register(None)
            done = "; ".join(stopped) if stopped else "nothing it may have made was found"
            raise OperationTimeout(
                f"the create request did not end within {self.timeout_name} ({format_duration(self.timeout)}): "
                f"{exc}; {done}. Raise {self.timeout_name} if the upload or the server needs longer."
            ) from exc
        except BaseException:
            register(None)
            raise
        register(None)

    def unless_cancelled(self, call: Callable[[], R]) -> R:
        """Run `call` in a helper thread and return its result, or raise Cancelled as soon as the run is cancelled.

        A create request may wait long for its answer (a slow server, an upload's last bytes), and `requests` cannot
        be interrupted. Waiting at most CREATE_ANSWER_GRACE for it lets the run's own cleanup start well within the
        budget: the answer, if it came, names what to stop; else the finder registered by `in_flight` finds what the
        request made, if anything. The abandoned request ends with the process.
        """
        wake = threading.Event()
        unregister = self.token.on_cancel(wake.set)
        try:
            # In this context: the create keeps the phase's deadline.
            request = Background(call, name="sgp-create", wake=wake).start()
            wake.wait()
        finally:
            unregister()
        if not request.done:
            # Cancelled mid-request. An upload still going stops at its next chunk (its progress callback checks
            # the token); a body already sent may be turning into a record on the server right now, and a finder
            # run too early would miss it, so the answer is given a moment before the cleanup looks.
            request.wait(CREATE_ANSWER_GRACE)
        if request.done:
            return request.result()
        self.token.check()
        raise AssertionError("unreachable: woken without a result, an error or a cancellation")

    def create_safely(self, what: str, send: Callable[[], R], find: Callable[[], list[R]] | None) -> R:
        """Send a create request, retried safely: after an ambiguous failure, first look for what it may have made.

        A 5xx, a cut connection or a timeout may come after the server acted
        (docs/sgp-api.md#creates-are-not-idempotent): sending again blindly would
        make a duplicate (or, for a new agent's name, a 409). `find` lists what this run created (newest first);
        without it an ambiguous failure is raised as it is.
        """
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return self.unless_cancelled(send)
            except AMBIGUOUS_ERRORS as exc:
                if find is None or attempt == CREATE_ATTEMPTS:
                    raise
                self.token.sleep(min(0.5 * 2.0**attempt, 8.0))
                found = find()
                if found:
                    self.console.info(f"Creating the {what} failed ({exc}), but the server made it; using it")
                    return found[0]
                self.console.info(f"Creating the {what} failed ({exc}); nothing was made, sending it again")
        raise AssertionError("unreachable: the last attempt returns or raises")
