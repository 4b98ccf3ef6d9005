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


class BuildServer:
    """A build that has ended by the first poll; its log endpoint answers 429 `throttled` times first (the
    transport backs off `Retry-After: 1` each time), or never answers at all with `silent`."""

    def __init__(self, *, throttled: int = 0, silent: bool = False, ids: bool = False) -> None:
        self.throttled, self.silent, self.ids = throttled, silent, ids
        self.released = threading.Event()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        if not handler.path.endswith("/logs"):
            send_json(handler, {"id": "b1", "build_status": "success", "image_name": "echo-bot"})
            return
        if self.silent:
            self.released.wait(30)
            return
        if self.throttled > 0:
            self.throttled -= 1
            handler.send_response(429)
            handler.send_header("Retry-After", "1")
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
    server = BuildServer(silent=True)
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
    server = BuildServer(silent=True)
    with serve(server) as hostile:
        follower = LogFollower(SGPClient.for_url(hostile.url, "k", "a"), "b1", FakeConsole(), threading.Event())
        follower.start()
        result: list[Any] = []
        waiter = threading.Thread(target=lambda: result.append(follower.finish(lambda: False)))
        waiter.start()
        follower.stop()
        waiter.join(2.0)
        server.released.set()
    assert result == [False] and follower.state == "connecting"
