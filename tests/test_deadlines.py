"""Deadlines that hold whatever the server does: dripping answers, no answer, stalled creates, open log streams.

The hostile servers are the tests' own (tests/hostile.py) on 127.0.0.1, in front of the emulator for full runs.
The pytest-timeout marks are the assertions on time: before the fix each of these runs for minutes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sgp_action.api.deadlines import current_deadline, deadline_scope, run_in_context, within
from sgp_action.api.transport import Transport
from sgp_action.errors import EXIT_OK, EXIT_TIMEOUT, RequestDeadlineError
from tests.hostile import HostileServer
from tests.run_helpers import Workspace, build_log_lines, server_build_log

# Real time limits of one to a few seconds each: the slow tier.
pytestmark = pytest.mark.e2e

BUILD_STATUS = r"GET /v5/builds/(?!undeployed$)[^/]+"
DEPLOYMENT_STATUS = r"GET /v5/agentex/deployments/[^/]+"


def _transport(url: str) -> Transport:
    return Transport(url, "test-api-key", "test-account", sleep=lambda _: None)


# --- the transport -------------------------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("method", "behaviour"), [("GET", "drip"), ("GET", "hang"), ("POST", "hang")])
def test_a_call_ends_at_its_deadline(method: str, behaviour: str) -> None:
    """A body dripping in, or no answer at all (a GET retried, a create not): cut at the deadline, a timeout."""
    with HostileServer({f"{method} /v5/builds(/b1)?": behaviour}, drip_seconds=0.2) as server:
        transport = _transport(server.url)
        started = time.monotonic()
        with pytest.raises(RequestDeadlineError, match="time limit") as caught:
            if method == "GET":
                transport.request("GET", "/v5/builds/b1", idempotent=True, deadline=started + 1.0)
            else:
                with within(1.0):  # the phases' way: a scope, not an argument
                    transport.request("POST", "/v5/builds", idempotent=False, json={"image_name": "x"})
        assert caught.value.exit_code == EXIT_TIMEOUT
        assert time.monotonic() - started < 5.0
        assert server.seen  # the request reached the server: the deadline cut it, not a refusal


def test_no_retry_starts_without_time_for_it() -> None:
    """A 503 with 1.2 s left: the backoff would leave too little for another attempt, so the call stops (exit 4)."""
    with HostileServer({"GET /v5/builds/b1": "503"}) as server:
        with pytest.raises(RequestDeadlineError, match="no time left to retry after HTTP 503"):
            _transport(server.url).request("GET", "/v5/builds/b1", idempotent=True, deadline=time.monotonic() + 1.2)
        assert server.seen == ["GET /v5/builds/b1"]


def test_a_passed_deadline_sends_nothing_and_a_scope_reaches_helper_threads() -> None:
    with HostileServer({}) as server:
        with pytest.raises(RequestDeadlineError, match="had passed"):
            _transport(server.url).request("GET", "/v5/builds/b1", idempotent=True, deadline=time.monotonic() - 1)
        assert server.seen == []
    seen: list[float | None] = []
    with deadline_scope(123.0):
        thread = threading.Thread(target=run_in_context(lambda: seen.append(current_deadline())))
        thread.start()
        thread.join()
    assert seen == [123.0] and current_deadline() is None


# --- full runs (sgp-action run against the emulator, behind the hostile server) ------------------------------


def _run(tmp_path: Path, emulator: Any, rules: dict[str, str], **inputs: str) -> tuple[Any, HostileServer]:
    with HostileServer(rules, upstream=emulator.url) as server:
        workspace = Workspace(tmp_path, dataclasses.replace(emulator, url=server.url))
        run = workspace.run("push", workspace.push("main"), **inputs)
    return run, server


@pytest.mark.timeout(30)
@pytest.mark.parametrize("behaviour", ["drip", "hang", "slow build"])
def test_build_timeout_holds_when_the_status_never_comes(tmp_path: Path, emulator_factory: Any, behaviour: str) -> None:
    """build-timeout=2s, the build's status dripping or never answered: exit 4 and the build is cancelled.

    A build merely slower than the limit (its status answered) gets the same, its last status in the message.
    """
    emulator = emulator_factory(build_seconds=60)
    rules = {} if behaviour == "slow build" else {BUILD_STATUS: behaviour}
    # A poll interval past the limit: after the first poll the run waits for the deadline itself, so no answered
    # poll can be in flight when it passes (with 0.1 s polls on a loaded machine, one sometimes was, and was cut).
    run, server = _run(tmp_path, emulator, rules, build_timeout="2s", poll_interval="5s")
    assert run.exit_code == EXIT_TIMEOUT, run.log
    assert "did not finish within build-timeout" in run.log and "it was cancelled" in run.log
    assert ("got no answer in time" in run.log) == (behaviour != "slow build")
    (build,) = emulator.state()["builds"]
    assert f"POST /v5/builds/{build['id']}/cancel" in server.seen
    assert build["build_status"] in {"cancelling", "cancelled"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reuse", ["true", "false"])
def test_a_server_that_never_answers_ends_by_build_timeout(tmp_path: Path, emulator: Any, reuse: str) -> None:
    """No answer to anything: exit 4 at build-timeout (was 371 s and exit 3 for 15 s), nothing was created."""
    run, server = _run(tmp_path, emulator, {".*": "hang"}, build_timeout="2s", reuse_build=reuse)
    assert run.exit_code == EXIT_TIMEOUT, run.log
    what = "looking for a build to reuse" if reuse == "true" else "looking up the agent"
    assert f"{what} did not end within build-timeout" in run.log
    assert len(server.seen) == 1  # not retried past the deadline


@pytest.mark.timeout(30)
@pytest.mark.parametrize("behaviour", ["hang", "swallow"])
def test_a_stalled_build_create_ends_by_build_timeout(tmp_path: Path, emulator_factory: Any, behaviour: str) -> None:
    """The create's answer never comes: exit 4 at build-timeout (not 3 x 60 s); a build it made is cancelled."""
    emulator = emulator_factory(build_seconds=60)
    run, server = _run(tmp_path, emulator, {"POST /v5/builds": behaviour}, build_timeout="2s")
    assert run.exit_code == EXIT_TIMEOUT, run.log
    assert "build-timeout" in run.log
    assert server.seen.count("POST /v5/builds") == 1  # a create cut at the deadline is not sent again
    builds = emulator.state()["builds"]
    if behaviour == "hang":
        assert builds == [] and "nothing it may have made was found" in run.log
    else:
        (build,) = builds
        assert build["build_status"] in {"cancelling", "cancelled"}
        assert f"build {build['id']} cancelled" in run.log


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("rule", "behaviour"),
    [(DEPLOYMENT_STATUS, "drip"), (DEPLOYMENT_STATUS, "hang"), ("POST /v5/agentex/deployments", "hang")],
)
def test_deploy_timeout_holds_whatever_the_server_does(
    tmp_path: Path, emulator_factory: Any, rule: str, behaviour: str
) -> None:
    """deploy-timeout=2s with the deployment's status dripping or never answered, or its create stalled: exit 4."""
    emulator = emulator_factory(deploy_seconds=60)
    run, server = _run(tmp_path, emulator, {rule: behaviour}, deploy_timeout="2s")
    assert run.exit_code == EXIT_TIMEOUT, run.log
    assert "within deploy-timeout" in run.log
    assert server.seen.count("POST /v5/agentex/deployments") == 1


@pytest.mark.timeout(12)  # ~20 s more before the fix: the run waited for the stream to close
def test_a_log_stream_left_open_after_the_build_does_not_hold_the_run(tmp_path: Path, emulator_factory: Any) -> None:
    """The emulator keeps the finished build's log stream open: the run still ends soon, every line printed."""
    emulator = emulator_factory(faults=["sse-hold-open"])
    workspace = Workspace(tmp_path, emulator)
    run = workspace.run("push", workspace.push("main"))
    assert run.exit_code == EXIT_OK, run.log
    assert build_log_lines(run.log) == server_build_log(emulator, run.outputs["build-id"])


# --- calls outside any phase ---------------------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("behaviour", ["drip", "hang"])
def test_teardown_calls_end_by_the_call_limit_outside_a_phase(behaviour: str) -> None:
    """Teardown, cleanup and replace-previous run in no phase scope: each call still ends by the transport's limit."""
    from sgp_action.api.client import SGPClient
    from sgp_action.run.teardown import delete_quietly, previews_with_label

    with HostileServer(
        {"GET /v5/agentex/deployments": behaviour, "DELETE /v5/agentex/deployments/d-1": behaviour}
    ) as s:
        client = SGPClient.for_url(s.url, "test-api-key", "test-account", sleep=lambda _: None)
        client.transport.call_limit = 1.0
        assert current_deadline() is None
        for call in (lambda: previews_with_label(client, "pr-7"), lambda: delete_quietly(client, "d-1")):
            started = time.monotonic()
            with pytest.raises(RequestDeadlineError, match="time limit"):
                call()
            assert time.monotonic() - started < 4.0
        assert "DELETE /v5/agentex/deployments/d-1" in s.seen
