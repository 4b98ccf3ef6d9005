"""The build log follower: every line once when the build ends while the stream reconnects, bounded waits, a warning
when the log could not be read to its end. Against small servers of the tests' own on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from sgp_action.api.client import SGPClient
from sgp_action.run import build_logs
from sgp_action.run.build_logs import LogFollower
from sgp_action.run.build_phase import BuildPhase
from tests.fakes import FakeConsole, build, phase_env
from tests.hostile import Hostile, send_json, serve

LINES = [f"Step {n}/5 : RUN make part-{n}" for n in range(1, 6)]


#: How soon after `stop()` a follower's thread must have ended, whatever the server does.
STOPPED_WITHIN = 2.0


class BuildServer:
    """A build that has ended by the first poll; its log endpoint answers 429 `throttled` times first (the
    transport backs off `Retry-After: retry_after` each time), or stalls until `released`: `stall="request"` never
    answers, `"status"` sends its status line and no more, `"headers"` its headers and not a byte of body. `asked`
    is set when the log endpoint gets a request."""

    def __init__(self, *, throttled: int = 0, retry_after: int = 1, stall: str = "", ids: bool = False) -> None:
        self.throttled, self.retry_after, self.stall, self.ids = throttled, retry_after, stall, ids
        self.released = threading.Event()
        self.asked = threading.Event()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        if not handler.path.endswith("/logs"):
            send_json(handler, {"id": "b1", "build_status": "success", "image_name": "echo-bot"})
            return
        self.asked.set()
        if self.stall:
            handler.close_connection = True
            if self.stall == "status":
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            elif self.stall == "headers":
                handler.send_response(200)
                handler.send_header("Content-Type", "text/event-stream")
                handler.send_header("Connection", "close")
                handler.end_headers()
            handler.wfile.flush()
            self.released.wait(30)
            return
        if self.throttled > 0:
            self.throttled -= 1
            handler.send_response(429)
            handler.send_header("Retry-After", str(self.retry_after))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        events = "".join(
            (f"id: {n}\n" if self.ids else "") + f"data: {json.dumps({'line': line})}\n\n"
            for n, line in enumerate(LINES)
        )
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(events.encode())
        handler.close_connection = True


def _follower_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name.startswith("sgp-logs-")]


def _all_end(threads: list[threading.Thread], seconds: float) -> bool:
    """Wait at most `seconds` for every one of `threads` to end; True when they all did."""
    end = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(end - time.monotonic(), 0.0))
    return not any(thread.is_alive() for thread in threads)


def _phase(hostile: Hostile) -> tuple[BuildPhase, FakeConsole]:
    env = phase_env(SGPClient.for_url(hostile.url, "key", "account"))
    return BuildPhase(env, timeout=30), env.console


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short settle times, so that a one-second backoff outlasts the quiet period, as a longer one would in CI."""
    monkeypatch.setattr(build_logs, "QUIET_SECONDS", 0.2)
    monkeypatch.setattr(build_logs, "DRAIN_SECONDS", 1.5)


@pytest.mark.parametrize("ids", [False, True])
def test_a_build_that_ends_while_the_stream_backs_off_after_a_429_still_prints_its_whole_log(
    quick: None, ids: bool
) -> None:
    server = BuildServer(throttled=1, ids=ids)
    with serve(server) as hostile:
        phase, console = _phase(hostile)
        done = phase.wait(build(id="b1"))
    assert done.status == "success"
    assert console.of("server") == LINES
    assert console.of("warning") == []


def test_a_log_endpoint_that_never_answers_ends_the_wait_soon_after_the_build_with_a_warning(quick: None) -> None:
    server = BuildServer(stall="request")
    with serve(server) as hostile:
        phase, console = _phase(hostile)
        started = time.monotonic()
        done = phase.wait(build(id="b1"))
        waited = time.monotonic() - started
        server.released.set()
    assert done.status == "success" and console.of("server") == []
    assert waited < build_logs.DRAIN_SECONDS + 1.5, waited
    (warning,) = console.of("warning")
    assert "log of build b1 may be incomplete" in warning and "SGP's UI" in warning


def test_stopping_a_follower_still_connecting_ends_its_settle_at_once() -> None:
    server = BuildServer(stall="request")
    with serve(server) as hostile:
        follower = LogFollower(SGPClient.for_url(hostile.url, "k", "a"), "b1", FakeConsole(), threading.Event())
        follower.start()
        result: list[Any] = []
        waiter = threading.Thread(target=lambda: result.append(follower.finish(lambda: False)))
        waiter.start()
        follower.stop()
        waiter.join(2.0)
        cut = follower.join(STOPPED_WITHIN)
        server.released.set()
    assert result == [False] and cut and follower.state == "failed" and follower.last_error == ""


@pytest.mark.parametrize("stall", ["request", "status", "headers"])
def test_after_a_good_build_the_follower_thread_ends_soon_even_when_the_log_stream_never_answers(
    quick: None, stall: str
) -> None:
    logs = BuildServer(stall=stall)
    before = set(threading.enumerate())
    with serve(logs) as hostile:
        phase, console = _phase(hostile)
        done = phase.wait(build(id="b1"))
        followers = _follower_threads(before)
        ended = _all_end(followers, STOPPED_WITHIN)
        logs.released.set()
    assert done.status == "success" and console.of("server") == []
    assert logs.asked.is_set() and ended, [t.name for t in followers if t.is_alive()]


@pytest.mark.parametrize("stall", ["request", "status", "headers", ""])
def test_a_stopped_follower_thread_ends_within_two_seconds_whatever_the_stream_does(stall: str) -> None:
    """Stopped while waiting for the stream's headers, while reading a stream that sends nothing, or (no stall)
    while the transport backs off a 429 asking for 30 s."""
    logs = BuildServer(stall=stall, throttled=5, retry_after=30)
    with serve(logs) as hostile:
        follower = LogFollower(SGPClient.for_url(hostile.url, "k", "a"), "b1", FakeConsole(), threading.Event())
        follower.start()
        assert logs.asked.wait(5.0)
        if stall == "headers":  # stopped while reading, not while opening
            with follower._changed:
                assert follower._changed.wait_for(lambda: follower.state != "connecting", 5.0)
        thread = follower._thread
        assert thread is not None
        stopped = time.monotonic()
        follower.stop()
        ended = _all_end([thread], STOPPED_WITHIN)
        took, state = time.monotonic() - stopped, follower.state
        logs.released.set()
    assert ended, f"the follower thread still runs {took:.1f} s after stop() (state {state})"
    assert follower.state in ("ended", "failed") and follower.last_error == ""
