"""Cancellation: the token, the signal supervisor (real signals to this process) and the bounded remote cleanup."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sgp_action.api.deadlines import call_with_deadline
from sgp_action.demo import AGENT_FOLDER, parse_output_file
from sgp_action.errors import ApiError, Cancelled
from sgp_action.run.cancel import CancelToken, RemoteWork, supervise
from tests.run_helpers import Workspace, start_run, wait_for_line
from tests.throttle import ThrottleProxy


def _signal_soon(signum: int, after: threading.Event) -> threading.Thread:
    """Send `signum` to this process once `after` is set (so the worker is surely waiting)."""

    def send() -> None:
        after.wait(10)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_token_wait_and_check() -> None:
    token = CancelToken()
    assert token.wait(0.01) is False
    token.check()
    token.cancel("stop now")
    assert token.cancelled
    assert token.wait(None) is True
    with pytest.raises(Cancelled, match="stop now"):
        token.check()
    with pytest.raises(Cancelled):
        token.sleep(30)


def test_token_callbacks_run_once_even_if_one_fails() -> None:
    token = CancelToken()
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("stream already closed")

    token.on_cancel(broken)
    token.on_cancel(lambda: calls.append("second"))
    unregister = token.on_cancel(lambda: calls.append("unregistered"))
    unregister()
    token.cancel()
    token.cancel()
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["broken", "second", "late"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_cancels_the_worker(signum: int) -> None:
    token = CancelToken()
    waiting = threading.Event()

    def work() -> str:
        waiting.set()
        return "cancelled" if token.wait(30) else "finished"

    sender = _signal_soon(signum, waiting)
    result = supervise(work, token, abandon=lambda: "abandoned")
    sender.join()
    assert result == "cancelled"
    assert token.cancelled and signal.Signals(signum).name in token.reason
    # The previous handlers are back: pytest's own SIGINT handling is untouched.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_stuck_worker_is_abandoned_and_a_second_signal_does_not_abort_the_cleanup() -> None:
    token = CancelToken()
    waiting, never = threading.Event(), threading.Event()
    cleanup_steps: list[str] = []

    def work() -> str:
        waiting.set()
        never.wait(30)  # blocking I/O that ignores the token
        return "finished"

    def abandon() -> str:
        cleanup_steps.append("started")
        os.kill(os.getpid(), signal.SIGTERM)  # the runner's second signal, during the cleanup
        cleanup_steps.append("finished")
        return "abandoned"

    sender = _signal_soon(signal.SIGINT, waiting)
    try:
        result = supervise(work, token, abandon=abandon, grace=0.2)
    finally:
        never.set()
    sender.join()
    assert result == "abandoned"
    assert cleanup_steps == ["started", "finished"]


def test_without_signal_the_worker_result_or_error_comes_back() -> None:
    token = CancelToken()
    assert supervise(lambda: 42, token, abandon=lambda: -1) == 42

    def fail() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        supervise(fail, token, abandon=lambda: -1)
    assert not token.cancelled


def test_off_the_main_thread_work_runs_inline() -> None:
    token = CancelToken()
    seen: list[str] = []

    def work() -> str:
        seen.append(threading.current_thread().name)
        return "ok"

    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(supervise(work, token, abandon=lambda: "no")), name="t1")
    thread.start()
    thread.join()
    assert box == ["ok"] and seen == ["t1"]


class FakeCleaner:
    def __init__(self, block: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.block = block

    def cancel_build(self, build_id: str) -> Any:
        self.calls.append(("cancel", build_id))
        if self.block is not None:
            self.block.wait(30)
        return {}

    def delete_deployment(self, deployment_id: str) -> Any:
        self.calls.append(("delete", deployment_id))
        return {}


def test_remote_work_is_stopped_exactly_once() -> None:
    remote = RemoteWork()
    remote.building("b-1")
    remote.deploying("d-1")
    cleaner = FakeCleaner()
    assert remote.stop(cleaner, 5) == ["build b-1 cancelled", "deployment d-1 deleted"]
    assert remote.stop(cleaner, 5) == ["build b-1 cancelled", "deployment d-1 deleted"]
    assert cleaner.calls == [("cancel", "b-1"), ("delete", "d-1")]


def test_remote_work_forgotten_is_not_touched() -> None:
    remote = RemoteWork()
    remote.building("b-1")
    remote.building(None)
    cleaner = FakeCleaner()
    assert remote.stop(cleaner, 5) == []
    assert cleaner.calls == []


def test_a_hanging_cleanup_call_is_given_up_on() -> None:
    block = threading.Event()
    remote = RemoteWork()
    remote.building("b-2")
    try:
        assert remote.stop(FakeCleaner(block), 0.2) == ["build b-2 cancel requested (no answer)"]
    finally:
        block.set()


def test_call_with_deadline_tells_a_result_an_error_and_no_answer_apart() -> None:
    def fail() -> int:
        raise RuntimeError("no")

    block = threading.Event()
    ok, failed, hung = (
        call_with_deadline(lambda: 7, 5),
        call_with_deadline(fail, 5),
        call_with_deadline(block.wait, 0.1),
    )
    block.set()
    assert (ok.done, ok.succeeded, ok.value) == (True, True, 7)
    assert (failed.done, failed.succeeded, str(failed.error)) == (True, False, "no")
    assert (hung.done, hung.succeeded, hung.error) == (False, False, None)


class RefusingCleaner(FakeCleaner):
    def cancel_build(self, build_id: str) -> Any:
        raise ApiError("HTTP 403: not allowed to cancel builds")


def test_a_refused_cancel_is_reported_as_failed_not_as_no_answer() -> None:
    remote = RemoteWork()
    remote.building("b-3")
    assert remote.stop(RefusingCleaner(), 5) == ["build b-3 cancel failed (HTTP 403: not allowed to cancel builds)"]


# --- real runs: `python -m sgp_action run` gets SIGINT, then SIGTERM (docs/architecture.md#cancellation) ---

#: The runner kills the job 10 s after its SIGINT (docs/architecture.md#cancellation): a run still alive then has failed
#: the contract.
RUNNER_KILL_SECONDS = 10.0


def _cancel_run(proc: subprocess.Popen[str], *, second_signal: bool = True) -> tuple[str, float]:
    """SIGINT (and SIGTERM right after, which must not abort the cleanup); (the rest of the output, exit seconds)."""
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    if second_signal:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=RUNNER_KILL_SECONDS)
    return rest, time.monotonic() - sent


def _result(tmp_path: Path) -> str:
    return parse_output_file((tmp_path / "github_output").read_text(encoding="utf-8"))["result"]


@pytest.mark.parametrize(
    ("phase", "overrides", "marker"),
    [
        ("build", {"build_seconds": 60}, "::group::Build logs"),
        ("deploy", {"build_seconds": 0.2, "deploy_seconds": 60}, "::group::Deployment"),
    ],
)
def test_sigint_to_a_real_run_stops_the_remote_work(
    tmp_path: Path, emulator_factory: Any, phase: str, overrides: dict[str, float], marker: str
) -> None:
    """SIGINT mid-phase: the build is cancelled, or the deployment being created deleted."""
    emulator = emulator_factory(**overrides)
    workspace = Workspace(tmp_path, emulator)
    proc = start_run(workspace.environ("push", workspace.push("main")))
    wait_for_line(proc, marker)  # the phase is under way
    rest, elapsed = _cancel_run(proc)
    assert proc.returncode == 130, rest
    assert _result(tmp_path) == "cancelled"
    state = emulator.state()
    if phase == "build":
        (build,) = state["builds"]
        assert build["build_status"] in {"cancelling", "cancelled"}
        assert state["deployments"] == []
    else:
        (deployment,) = state["deployments"]
        assert deployment["status"] == "DELETED"
    assert "cancelled" in rest
    print(f"{phase}: exit {elapsed:.2f} s after SIGINT")


def test_sigint_while_packaging_stops_the_packaging(tmp_path: Path, emulator_factory: Any) -> None:
    """SIGINT while the context is packaged: the worker itself stops at once; nothing was sent, nothing is left.

    A 1 GiB sparse file (no disk used) takes seconds to package, longer than the grace period after which the
    main thread would abandon a worker that does not stop: an exit without "did not stop within" is the worker's.
    """
    emulator = emulator_factory()
    workspace = Workspace(tmp_path, emulator)
    big = workspace.repo / AGENT_FOLDER / "data" / "zeros.bin"
    big.parent.mkdir()
    with open(big, "wb") as sparse:
        sparse.truncate(1 << 30)
    proc = start_run(workspace.environ("push", workspace.push("main")))
    wait_for_line(proc, "::group::Build context")
    rest, elapsed = _cancel_run(proc)
    assert proc.returncode == 130, rest
    assert _result(tmp_path) == "cancelled"
    assert "no remote work was under way" in rest
    assert "did not stop within" not in rest, rest  # the worker stopped by itself, well within the grace period
    assert list(tmp_path.glob("sgp-context-*")) == []  # the temporary folder and the partial archive are gone
    state = emulator.state()
    assert state["requests"] == [] and state["builds"] == []  # packaging comes before the first API request
    print(f"packaging: exit {elapsed:.2f} s after SIGINT")


#: The proxy's uplink in bytes/s, and a context of incompressible bytes that takes seconds to upload through it.
UPLOAD_RATE = 4 * 1024 * 1024
UPLOAD_BYTES = 32 * 1024 * 1024


def test_sigint_during_the_upload_creates_nothing(tmp_path: Path, emulator_factory: Any) -> None:
    """SIGINT while the context streams up (a throttled proxy makes it last): the body is cut, no build is made."""
    emulator = emulator_factory(build_seconds=60)
    with ThrottleProxy(emulator.url, upload_rate=UPLOAD_RATE) as proxy:
        workspace = Workspace(tmp_path, dataclasses.replace(emulator, url=proxy.url))
        noise = workspace.repo / AGENT_FOLDER / "data" / "noise.bin"
        noise.parent.mkdir()
        noise.write_bytes(random.Random(9).randbytes(UPLOAD_BYTES))  # stored, not deflated: quick to package
        proc = start_run(workspace.environ("push", workspace.push("main")))
        wait_for_line(proc, "Uploading the build context:")
        rest, elapsed = _cancel_run(proc)
    assert proc.returncode == 130, rest
    assert _result(tmp_path) == "cancelled"
    assert "did not stop within" not in rest, rest  # the upload's own progress callback stopped it
    # The run does not wait for the cut upload to end: the server may record it a moment after the exit.
    deadline = time.monotonic() + 10
    while True:
        state = emulator.state()
        creates = [r for r in state["requests"] if (r["method"], r["path"]) == ("POST", "/v5/builds")]
        if creates or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(creates) == 1 and creates[0]["status"] != 200  # the upload reached the server, cut short
    assert state["builds"] == []
    print(f"upload: exit {elapsed:.2f} s after SIGINT (create request ended {creates[0]['status']})")


@dataclasses.dataclass(frozen=True)
class HeldCreate:
    """A create whose answer the proxy holds back: its request line, where the emulator lists what it made."""

    request_line: bytes
    records: str
    status_key: str
    stopped_status: frozenset[str]
    stopped_text: str
    emulator: dict[str, float]


HELD_CREATES = {
    "build": HeldCreate(
        b"POST /v5/builds HTTP/1.1\r\n",
        "builds",
        "build_status",
        frozenset({"cancelling", "cancelled"}),
        "build {} cancelled",
        {"build_seconds": 60},
    ),
    "deploy": HeldCreate(
        b"POST /v5/agentex/deployments HTTP/1.1\r\n",
        "deployments",
        "status",
        frozenset({"DELETED"}),
        "deployment {} deleted",
        {"build_seconds": 0.2, "deploy_seconds": 60},
    ),
}


def _held_run(
    tmp_path: Path, emulator: Any, proxy: ThrottleProxy, case: HeldCreate
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start a run through `proxy`; return once the server made the record and its answer is held back."""
    workspace = Workspace(tmp_path, dataclasses.replace(emulator, url=proxy.url))
    proc = start_run(workspace.environ("push", workspace.push("main")))
    if not proxy.holding.wait(60):
        proc.kill()
        raise AssertionError(f"the create's answer never came: {proc.communicate()[0]}")
    (made,) = emulator.state()[case.records]
    assert made[case.status_key] not in case.stopped_status
    return proc, made


def _assert_stopped(tmp_path: Path, emulator: Any, case: HeldCreate, made: dict[str, Any], rest: str) -> None:
    assert _result(tmp_path) == "cancelled"
    assert case.stopped_text.format(made["id"]) in rest, rest
    (record,) = emulator.state()[case.records]
    assert record[case.status_key] in case.stopped_status


@pytest.mark.parametrize("kind", sorted(HELD_CREATES))
def test_a_create_answered_but_not_received_is_found_and_stopped(
    tmp_path: Path, emulator_factory: Any, kind: str
) -> None:
    """The create's body went up and the server made the record, but its answer is held back when SIGINT comes.

    The worker waits for the answer only CREATE_ANSWER_GRACE (the request runs in a helper thread), then its own
    cleanup's finder lists what this run created, which is cancelled or deleted. No abandon by the main thread.
    """
    case = HELD_CREATES[kind]
    emulator = emulator_factory(**case.emulator)
    with ThrottleProxy(emulator.url, hold_marker=case.request_line) as proxy:
        proc, made = _held_run(tmp_path, emulator, proxy, case)
        rest, elapsed = _cancel_run(proc)
    assert proc.returncode == 130, rest
    assert "did not stop within" not in rest, rest
    _assert_stopped(tmp_path, emulator, case, made, rest)
    print(f"{kind} create answer held: exit {elapsed:.2f} s after SIGINT")


@pytest.mark.parametrize("kind", sorted(HELD_CREATES))
def test_a_create_whose_answer_is_lost_after_sigint_is_found_and_stopped(
    tmp_path: Path, emulator_factory: Any, kind: str
) -> None:
    """SIGINT while the create's answer is held, then the connection drops without it (an ambiguous failure).

    The cut ends the request within the worker's grace for the answer, as an ambiguous failure; what the server
    made must still be found (by the finder of the create in flight) and stopped by the worker's own cleanup.
    """
    case = HELD_CREATES[kind]
    emulator = emulator_factory(**case.emulator)
    with ThrottleProxy(emulator.url, hold_marker=case.request_line) as proxy:
        proc, made = _held_run(tmp_path, emulator, proxy, case)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        # The main thread logs the signal just before it sets the token: cut once it has (were the cut first, the
        # worker would retry, find the record and adopt it, and the cancellation would stop it all the same).
        wait_for_line(proc, "received SIGINT: cancelling", anywhere=True)
        proxy.cut()
        cut = time.monotonic()
        rest, _ = proc.communicate(timeout=RUNNER_KILL_SECONDS)
        elapsed, after_cut = time.monotonic() - sent, time.monotonic() - cut
    assert proc.returncode == 130, rest
    assert "did not stop within" not in rest, rest
    _assert_stopped(tmp_path, emulator, case, made, rest)
    print(f"{kind} create answer lost after SIGINT: exit {elapsed:.2f} s after SIGINT, {after_cut:.2f} s after the cut")


def test_a_create_in_flight_is_found_and_stopped() -> None:
    remote = RemoteWork()
    remote.creating_build(lambda: ["b-7", "b-8"])
    remote.creating_deployment(lambda: ["d-7"])
    cleaner = FakeCleaner()
    assert remote.stop(cleaner, 5) == ["build b-7 cancelled", "build b-8 cancelled", "deployment d-7 deleted"]
    assert cleaner.calls == [("cancel", "b-7"), ("cancel", "b-8"), ("delete", "d-7")]


def test_a_known_id_wins_over_the_finder() -> None:
    remote = RemoteWork()
    remote.creating_build(lambda: ["b-other"])
    remote.building("b-1")
    cleaner = FakeCleaner()
    assert remote.stop(cleaner, 5) == ["build b-1 cancelled"]


def test_a_run_stuck_in_a_slow_request_still_exits_cancelled(tmp_path: Path, emulator_factory: Any) -> None:
    """The worker is blocked in HTTP when SIGINT comes: the main thread abandons it, asks for the cancel, exits.

    A proxy holds back the answer of the next build-status poll (its read timeout is far past the grace period), and
    SIGINT goes only once that answer is held: the worker is surely inside the request, however loaded the machine.
    """
    emulator = emulator_factory(build_seconds=60)
    with ThrottleProxy(emulator.url) as proxy:
        workspace = Workspace(tmp_path, dataclasses.replace(emulator, url=proxy.url))
        proc = start_run(workspace.environ("push", workspace.push("feature-x"), poll_interval="0.2s"))
        wait_for_line(proc, "::group::Build logs")
        (build,) = emulator.state()["builds"]
        proxy.hold_marker = f"GET /v5/builds/{build['id']} ".encode()  # the status poll, not the log stream
        if not proxy.holding.wait(30):
            proc.kill()
            raise AssertionError(f"no status poll came: {proc.communicate()[0]}")
        rest, _ = _cancel_run(proc, second_signal=False)
    assert proc.returncode == 130, rest
    assert _result(tmp_path) == "cancelled"
    assert "did not stop within" in rest
    deadline = time.monotonic() + 20  # the cancel request reaches the server
    while time.monotonic() < deadline:
        (build,) = emulator.state()["builds"]
        if build["build_status"] in {"cancelling", "cancelled"}:
            break
        time.sleep(0.05)
    assert build["build_status"] in {"cancelling", "cancelled"}
