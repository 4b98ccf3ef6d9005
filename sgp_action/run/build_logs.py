"""The build's live log: a thread printing each SSE line exactly once, across stream ends and reconnects
(docs/sgp-api.md#build-log-reconnects).

No resume cursor is documented: a reconnect may replay from the first line, resume after `Last-Event-ID` or start at
the live tail. When the events carry ids, the follower sends the last one on reconnect and drops any event whose id
it already printed; without ids it counts the lines it printed and skips that many on every reconnect. Either way no
line is printed twice, and a closed or broken stream never fails a good build.

Once the build has ended, `finish` reads the rest of the log, every wait bounded: a connection still being opened
(the transport backing off after a 429, say) is waited for, never taken for a caught-up stream, so a build that ends
while the stream reconnects still gets its whole log printed.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from sgp_action.api.deadlines import Watchdog
from sgp_action.run.phase import TAIL_LINES, Console

if TYPE_CHECKING:
    from sgp_action.api.protocol import ApiClient

log = logging.getLogger(__name__)

#: After the build ended, how long a connection may take to open, and to bring its first lines.
DRAIN_SECONDS = 5.0
#: After the build ended, a stream that brings no line for this long is caught up: some servers keep it open.
QUIET_SECONDS = 1.5

State = Literal["idle", "connecting", "open", "ended", "failed"]


class LogFollower:
    """A thread printing a build's SSE log lines exactly once, across stream ends and reconnects.

    `state` tells where the current connection is: `connecting` (the request is out, retries and backoff included),
    `open` (lines are being read), `ended` (closed cleanly) or `failed` (the request or the stream broke).
    """

    def __init__(self, client: ApiClient, build_id: str, console: Console, wake: threading.Event) -> None:
        self.client = client
        self.build_id = build_id
        self.console = console
        self.wake = wake
        self.printed = 0
        self.last_event_id = ""  # sent as Last-Event-ID on reconnect
        self._printed_ids: set[str] = set()
        self._counted = 0  # lines printed that came without an id: a reconnect without ids replays them
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.connections = 0
        self.state: State = "idle"
        self.opened_at = 0.0  # time.monotonic() the current connection opened
        self.ended_at = 0.0  # time.monotonic() the last connection ended or failed
        self.last_line_at = 0.0  # time.monotonic() of the last line received, replayed ones included
        self.last_error = ""
        self._changed = threading.Condition()  # guards the state above, `_opening` and `_stream`; notified on changes
        self._opening: Watchdog | None = None  # cuts the request of a connection being opened
        self._stream: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """True while a connection is open or being opened."""
        return self.state in ("connecting", "open")

    def start(self) -> None:
        """Open a connection in a new thread (the previous one must have ended); lines already printed are skipped."""
        with self._changed:
            if self._stop.is_set() or self.active:
                return
            self._set("connecting")
        self._thread = threading.Thread(target=self._follow, name=f"sgp-logs-{self.build_id}", daemon=True)
        self._thread.start()

    def _set(self, state: State) -> None:
        """Change state; the caller holds `_changed`."""
        self.state = state
        if state == "open":
            self.opened_at = time.monotonic()
        elif state in ("ended", "failed"):
            self.ended_at = time.monotonic()
        self._changed.notify_all()

    def _follow(self) -> None:
        self.connections += 1
        outcome: State = "failed"
        # The stream's request has no deadline (a quiet build must not cut it): `stop` cuts it instead, whether it
        # waits for a connection, for headers, or backs off before a retry.
        opening = Watchdog()
        try:
            with self._changed:
                if self._stop.is_set():
                    return
                self._opening = opening
            with opening:
                stream = self.client.open_build_logs(self.build_id, last_event_id=self.last_event_id)
            with self._changed:
                self._opening = None
                if not self._stop.is_set():
                    self._stream = stream
                    self._set("open")
            with stream:  # closed at once when the follower was stopped while this connection was being opened
                if self._stream is stream:
                    self._read(stream)
                    outcome = "ended"
        except Exception as exc:  # a broken stream is not a failed build: polling carries on
            log.debug("build log stream ended with an error: %s", exc)
            if not self._stop.is_set():  # a connection cut by `stop` did not fail
                self.last_error = str(exc)[:200]
        finally:
            with self._changed:
                self._opening = None
                self._stream = None
                self._set(outcome)
            self.wake.set()

    def _read(self, stream: Any) -> None:
        seen = 0
        for event_id, line in stream.entries():
            with self._changed:
                self.last_line_at = time.monotonic()
                self._changed.notify_all()
            if self._stop.is_set():  # nothing is printed once the follower was stopped (its group has ended)
                break
            if event_id:
                if event_id in self._printed_ids:  # replayed, or resumed from further back
                    continue
                self._printed_ids.add(event_id)
                self.last_event_id = event_id
            else:
                seen += 1
                if seen <= self._counted:  # a reconnect without ids replays from the first line
                    continue
                self._counted += 1
            self.console.server_line(line)
            self.tail.append(line)
            self.printed += 1

    def join(self, timeout: float) -> bool:
        """Wait for the current connection's thread to end; True when it did."""
        if self._thread is not None:
            self._thread.join(max(timeout, 0.0))
        return self._thread is None or not self._thread.is_alive()

    def settle(self, quiet: float, limit: float, *, connect_within: float | None = None) -> bool:
        """Wait until the current connection ends, or brought no line for `quiet` seconds since it opened, at most
        `limit` seconds (`connect_within`, when shorter, while it is still being opened). True when it ended.

        A server may keep the stream open once the build is over: waiting for it to close would add the whole
        `limit` to every run. A connection still being opened is never quiet: its lines have not started.
        """
        start = time.monotonic()
        end = start + limit
        connect_end = min(end, start + connect_within) if connect_within is not None else end
        with self._changed:
            while self.active and not self._stop.is_set():
                now = time.monotonic()
                if self.state == "open":
                    until = min(max(self.last_line_at, self.opened_at, start) + quiet, end)
                else:
                    until = connect_end
                if now >= until:
                    break
                self._changed.wait(until - now)
            return not self.active

    def finish(self, cancelled: Callable[[], bool]) -> bool:
        """Once the build has ended: print the lines not printed yet, then stop. True when the log was read to its
        end (a connection opened after the build ended ran to its close or went quiet).

        Whether a connection closed early cannot be told from a clean close, so the log is read again: lines
        already printed are skipped, the rest printed. A stream cut again part-way (a flaky proxy) is reopened as
        long as each connection brings new lines. Every wait is bounded: a server whose log endpoint never answers
        holds the run at most `DRAIN_SECONDS` after the build ended, a stream that keeps bringing lines four times
        that.
        """
        since = time.monotonic()
        give_up = since + DRAIN_SECONDS * 4
        complete = False
        ended = self.settle(QUIET_SECONDS, give_up - since, connect_within=DRAIN_SECONDS)
        while not cancelled():
            # Judged on the latest connection: an earlier one that closed cleanly may have been cut by a proxy.
            complete = self._quiet() or (self.state == "ended" and self.ended_at >= since)
            if not ended or time.monotonic() >= give_up:
                break
            before = self.printed
            self.start()
            ended = self.settle(QUIET_SECONDS, give_up - time.monotonic(), connect_within=DRAIN_SECONDS)
            if self.printed == before:
                complete = complete or self._quiet() or self.state == "ended"
                break
        self.stop()
        return complete

    def _quiet(self) -> bool:
        """The connection is open and brought no line for `QUIET_SECONDS` (caught up), rather than cut by a limit."""
        return self.state == "open" and time.monotonic() - max(self.last_line_at, self.opened_at) >= QUIET_SECONDS

    def stop(self) -> None:
        """Close the stream, or cut the request opening it (thread-safe), and never reconnect: the thread ends at
        once, whatever the server does (the opening of a new TCP connection ends by its connect timeout)."""
        self._stop.set()
        with self._changed:
            opening, stream = self._opening, self._stream
            self._changed.notify_all()
        if opening is not None:
            opening.cut()
        if stream is not None:
            try:
                stream.close()
            except Exception:
                log.debug("closing the log stream failed", exc_info=True)
