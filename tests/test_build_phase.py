"""The build phase: agent id, reuse, upload progress, live logs exactly once across stream ends, failure, timeout."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from sgp_action.api.models import Phase
from sgp_action.errors import (
    ApiConnectionError,
    BuildFailed,
    Cancelled,
    ConflictError,
    InputError,
    OperationTimeout,
    ServerError,
    ValidationError,
)
from sgp_action.run.agents import id_from_conflict
from sgp_action.run.build_logs import LogFollower
from sgp_action.run.build_phase import BuildPhase, BuildSpec, ProgressPrinter
from sgp_action.run.cancel import CancelToken
from tests.fakes import FakeClient, FakeConsole, FakeStream, build, phase_env, ticking_clock
from tests.run_helpers import Workspace, start_run, wait_for_line
from tests.support import EmulatorHandle


def _phase(client: FakeClient, *, timeout: float = 30.0, token: CancelToken | None = None, clock: Any = None) -> Any:
    env = phase_env(client, token=token, clock=clock)
    return BuildPhase(env, timeout=timeout), env.console


def _spec(**kw: Any) -> BuildSpec:
    values: dict[str, Any] = dict(
        agent_name="echo-bot",
        image_name="echo-bot",
        image_tag="abc1234",
        archive_path="/tmp/context.tar.gz",
        working_tree_hash="h" * 64,
    )
    values.update(kw)
    return BuildSpec(**values)


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ([], None),
        ([build(agent_name="echo-bot", agent_id="agent-9")], "agent-9"),
        # An older server ignores the filter (docs/sgp-api.md#older-servers-ignore-unknown-filters): other agents'
        # builds come first.
        ([build(agent_name="other", agent_id="agent-2"), build(agent_name="echo-bot", agent_id="agent-3")], "agent-3"),
        ([build(agent_name="other", agent_id="agent-2")], None),
        ([build(agent_name="echo-bot", agent_id=None)], None),
    ],
)
def test_agent_id_resolution(listed: list[Any], expected: str | None) -> None:
    client = FakeClient()
    client.listed_builds = listed
    phase, _ = _phase(client)
    assert phase.resolve_agent_id("echo-bot") == expected
    assert client.calls[0] == (
        "list_builds",
        {"agent_name": "echo-bot", "limit": 1, "sort_by": "created_at", "sort_order": "desc"},
    )


def test_create_sends_agent_id_when_the_agent_exists_and_agent_name_otherwise() -> None:
    client = FakeClient()
    client.listed_builds = [build(agent_id="agent-9")]
    phase, console = _phase(client)
    phase.create(_spec())
    sent = [v for n, v in client.calls if n == "create_build"]
    assert sent[0]["agent_id"] == "agent-9" and sent[0]["agent_name"] is None
    assert phase.remote.build_id == "b-1"
    assert any(line.startswith("Uploading the build context: 100%") for line in console.of("info"))

    client = FakeClient()
    phase, _ = _phase(client)
    phase.create(_spec())
    sent = [v for n, v in client.calls if n == "create_build"]
    assert sent[0]["agent_name"] == "echo-bot" and sent[0]["agent_id"] is None


def test_a_server_refusing_agent_id_gets_agent_name() -> None:
    client = FakeClient()
    client.listed_builds = [build(agent_id="agent-9")]
    client.refuse_agent_id = True
    phase, _ = _phase(client)
    phase.create(_spec())
    sent = [v for n, v in client.calls if n == "create_build"]
    assert [(s["agent_id"], s["agent_name"]) for s in sent] == [("agent-9", None), (None, "echo-bot")]


def test_reuse_checks_hash_agent_and_status_client_side() -> None:
    client = FakeClient()
    client.listed_builds = [
        build("success", id="b-other-hash", working_tree_hash="x" * 64),
        build("failed", id="b-failed"),
        build("success", id="b-other-agent", agent_name="other"),
        build("success", id="b-good"),
    ]
    phase, _ = _phase(client)
    found = phase.find_reusable("echo-bot", "h" * 64)
    assert found is not None and found.id == "b-good"
    client.listed_builds = client.listed_builds[:3]
    assert phase.find_reusable("echo-bot", "h" * 64) is None


def test_progress_lines_every_ten_percent_and_the_last_one() -> None:
    console = FakeConsole()
    printer = ProgressPrinter(console, CancelToken(), clock=lambda: 0.0)
    for sent in range(0, 1001, 1):
        printer(sent, 1000)
    percents = [line.split(":")[1].split("%")[0].strip() for line in console.of("info")]
    assert percents == ["10", "20", "30", "40", "50", "60", "70", "80", "90", "100"]


def test_progress_is_the_cancellation_point_of_an_upload() -> None:
    token = CancelToken()
    printer = ProgressPrinter(FakeConsole(), token)
    printer(1, 10)
    token.cancel()
    with pytest.raises(Cancelled):
        printer(2, 10)


def test_logs_are_printed_once_across_replaying_reconnects() -> None:
    client = FakeClient()
    lines = [f"Step {i}/6" for i in range(1, 7)]
    # Each connection replays from the first line and closes early, sometimes with an error.
    client.streams = [
        FakeStream(lines[:2]),
        FakeStream(lines[:4], error=ConnectionResetError("reset")),
        FakeStream(lines[:4]),
        FakeStream(lines),
    ]
    client.build_statuses = ["running"] * 8 + ["success"]
    phase, console = _phase(client)
    result = phase.wait(build("queued"))
    assert result.phase is Phase.SUCCEEDED
    assert console.of("server") == lines
    assert phase.report.build_status == "success" and phase.remote.build_id is None
    assert console.lines[0] == ("group", "Build logs (b-1)")


@pytest.mark.parametrize(
    "connections",
    [
        # resumes after Last-Event-ID
        [[1, 2], [3, 4], [5, 6]],
        # starts at the live tail: lines sent while no connection was open are lost, nothing is repeated
        [[1, 2], [4, 5], [6]],
        # replays from the first line, with ids
        [[1, 2], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6]],
        # resumes from further back than asked
        [[1, 2, 3], [2, 3, 4, 5], [5, 6]],
    ],
)
def test_with_event_ids_reconnects_send_the_last_id_and_drop_ids_already_printed(connections: list[list[int]]) -> None:
    client = FakeClient()
    client.streams = [FakeStream([(str(n), f"line {n}") for n in numbers]) for numbers in connections]
    client.build_statuses = ["running"] * 8 + ["success"]
    phase, console = _phase(client)
    phase.wait(build("queued"))
    expected = sorted({n for numbers in connections for n in numbers})
    assert console.of("server") == [f"line {n}" for n in expected]
    sent = client.last_event_ids[: len(connections)]
    assert sent == ["", *[str(max(n for c in connections[:i] for n in c)) for i in range(1, len(connections))]]


def test_a_stream_that_never_works_does_not_fail_a_good_build() -> None:
    client = FakeClient()
    client.streams = [FakeStream([], error=ConnectionRefusedError("refused"))]
    client.build_statuses = ["running", "running", "success"]
    phase, console = _phase(client)
    assert phase.wait(build()).status == "success"
    assert console.of("server") == []
    (warning,) = console.of("warning")
    assert "log of build b-1 may be incomplete" in warning, warning


def test_failure_carries_the_log_tail() -> None:
    client = FakeClient()
    lines = [f"line {i}" for i in range(30)] + ["The command '/bin/sh -c false' returned a non-zero code: 1"]
    client.streams = [FakeStream(lines)]
    client.build_statuses = ["running", "failed"]
    phase, _ = _phase(client)
    with pytest.raises(BuildFailed) as info:
        phase.wait(build())
    message = str(info.value)
    assert "ended with status failed" in message and "returned a non-zero code: 1" in message
    assert "line 10" not in message and "line 11" in message  # the last 20 lines only
    assert phase.report.build_status == "failed"


def test_timeout_cancels_the_build() -> None:
    client = FakeClient()
    client.build_statuses = ["running"]
    clock = ticking_clock()
    phase, _ = _phase(client, timeout=5.0, clock=clock)
    with pytest.raises(OperationTimeout, match=r"build-timeout .*it was cancelled"):
        phase.wait(build())
    assert ("cancel_build", "b-1") in client.calls


def test_cancellation_closes_the_stream_and_stops_waiting() -> None:
    client = FakeClient()
    hold = threading.Event()
    stream = FakeStream(["Step 1/2"], hold=hold)
    client.streams = [stream]
    client.build_statuses = ["running"]
    token = CancelToken()
    phase, _console = _phase(client, token=token)
    phase.poll_interval = 30.0  # only the token can end the wait
    timer = threading.Timer(0.2, token.cancel)
    timer.start()
    with pytest.raises(Cancelled):
        phase.wait(build())
    assert client.opened[0] is stream and stream.closed.is_set()
    assert phase.remote.build_id is None or phase.remote.build_id == "b-1"


def test_follower_counts_printed_lines() -> None:
    client = FakeClient()
    client.streams = [FakeStream(["a", "b"]), FakeStream(["a", "b", "c"])]
    wake = threading.Event()
    console = FakeConsole()
    follower = LogFollower(client, "b-1", console, wake)
    follower.start()
    assert follower.join(5) and wake.is_set()
    follower.start()
    assert follower.join(5)
    assert console.of("server") == ["a", "b", "c"] and follower.printed == 3 and follower.connections == 2


# --- against the emulator, with the real client ------------------------------------------------------------------


def _real_phase(emulator: Any, token: CancelToken | None = None) -> Any:
    from sgp_action.api.client import SGPClient

    client = SGPClient.for_url(emulator.url, emulator.api_key, emulator.account_id)
    env = phase_env(client, token=token)
    return BuildPhase(env, timeout=30), env


def _archive(tmp_path: Any, extra: bytes = b"") -> Any:
    import io
    import tarfile

    path = tmp_path / "context.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("Dockerfile", b"FROM alpine\nRUN echo hello\n"), ("blob.bin", extra)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_second_build_of_an_agent_sends_its_id(emulator: Any, tmp_path: Any) -> None:
    phase, env = _real_phase(emulator)
    spec = _spec(archive_path=_archive(tmp_path))
    first = phase.wait(phase.create(spec))
    second = phase.wait(phase.create(spec))
    assert first.status == second.status == "success"
    builds = emulator.state()["builds"]
    assert len(builds) == 2 and builds[0]["agent_id"] == builds[1]["agent_id"]
    assert env.console.of("server").count("hello") == 2  # each build's `RUN echo hello` output, once


def test_cancel_during_the_upload_creates_nothing(emulator: Any, tmp_path: Any) -> None:
    import os

    token = CancelToken()
    phase, env = _real_phase(emulator, token)
    env.console.info = lambda text: token.cancel()  # cancel at the first progress line
    spec = _spec(archive_path=_archive(tmp_path, os.urandom(4_000_000)))
    with pytest.raises(Cancelled):
        phase.create(spec)
    assert emulator.state()["builds"] == []


def test_created_since_finds_what_this_run_made(emulator: Any, tmp_path: Any) -> None:
    from datetime import timedelta

    phase, _ = _real_phase(emulator)
    spec = _spec(archive_path=_archive(tmp_path))
    since = datetime.now(timezone.utc)
    created = phase.create(spec)
    assert [b.id for b in phase.created_since(spec, since, active_only=False)] == [created.id]
    assert phase.created_since(spec, since + timedelta(minutes=5), active_only=False) == []  # made before: not ours
    other_hash = _spec(archive_path=spec.archive_path, working_tree_hash="0" * 64)
    assert phase.created_since(other_hash, since, active_only=False) == []


@pytest.mark.parametrize("emulator", [{"faults": ["lose-create-response"]}], indirect=True)
def test_a_lost_create_answer_gives_the_build_the_server_made(emulator: Any, tmp_path: Any) -> None:
    phase, env = _real_phase(emulator)
    build = phase.create(_spec(archive_path=_archive(tmp_path)))
    (stored,) = emulator.state()["builds"]
    assert build.id == stored["id"] and phase.remote.build_id == build.id
    assert any("the server made it" in line for line in env.console.of("info"))


@pytest.mark.parametrize(
    ("error", "made", "creates"),
    [
        (ServerError("500", status_code=500), False, 2),  # nothing made: sent again
        (ApiConnectionError("reset"), True, 1),  # made: adopted, not sent again
    ],
)
def test_ambiguous_create_failures(error: Exception, made: bool, creates: int) -> None:
    client = FakeClient()
    client.create_errors = [error]
    phase, _ = _phase(client)
    client.listed_builds_after_create = (
        [build("queued", id="b-made", created_at=datetime.now(timezone.utc))] if made else []
    )
    result = phase.create(_spec())
    assert client.names().count("create_build") == creates
    assert result.id == ("b-made" if made else "b-1")


def test_a_refused_create_is_not_retried() -> None:
    client = FakeClient()
    client.create_errors = [ValidationError("image_name is invalid", status_code=400)]
    phase, _ = _phase(client)
    with pytest.raises(ValidationError):
        phase.create(_spec())
    assert client.names().count("create_build") == 1


def test_lines_lost_by_a_close_just_before_the_end_are_caught_up() -> None:
    client = FakeClient()
    lines = [f"Step {i}/4" for i in range(1, 5)]
    # The only connection during the build closes after two lines; the build is already done at the next poll.
    client.streams = [FakeStream(lines[:2]), FakeStream(lines)]
    client.build_statuses = ["success"]
    phase, console = _phase(client)
    phase.wait(build())
    assert console.of("server") == lines


@pytest.mark.parametrize("status", ["failed", "cancelled", "CANCELLING", "timed_out", "unknown"])
def test_a_build_that_ended_badly_or_is_ending_is_never_followed(status: str) -> None:
    client = FakeClient()
    client.listed_builds = [build(status, id="b-bad")]
    phase, _ = _phase(client)
    assert phase.find_reusable("echo-bot", "h" * 64) is None
    assert [n for n, _ in client.calls if n in ("get_build", "open_build_logs")] == []


def _finish_now(emulator: EmulatorHandle, build_id: str) -> None:
    """Move the emulator's clock for one build so that it ends at once (it was made to run for a minute)."""
    store = emulator.server.store
    with store.changed:
        store.builds[build_id].created_mono -= 3600
        store.changed.notify_all()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dialect", ["current", "legacy"])
def test_a_rerun_after_sigkill_follows_the_unfinished_build(
    tmp_path: Path, emulator_factory: Any, dialect: str
) -> None:
    """The first run is killed (SIGKILL) mid-build; the rerun of the same tree follows that build, creating none."""
    emulator = emulator_factory(build_seconds=60, dialect=dialect)
    workspace = Workspace(tmp_path, emulator)
    first = start_run(workspace.environ("push", workspace.push("main")))
    try:
        wait_for_line(first, "::group::Build logs")
    finally:
        first.kill()
        first.wait()
    (left,) = emulator.state()["builds"]
    assert str(left.get("build_status") or left.get("status")).lower() in {"queued", "running"}
    build_id = str(left.get("id") or left.get("build_id"))
    seen = len(emulator.state()["requests"])

    runs: list[Any] = []
    rerun = threading.Thread(target=lambda: runs.append(workspace.run("push", workspace.push("main"))))
    rerun.start()
    polled = f"/v5/builds/{build_id}"
    deadline = time.monotonic() + 30
    while not any(r["path"] == polled for r in emulator.state()["requests"][seen:]):  # the rerun follows it
        assert rerun.is_alive() and time.monotonic() < deadline, runs and runs[0].log
        time.sleep(0.02)
    _finish_now(emulator, build_id)
    rerun.join(30)

    (run,) = runs
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert (run.outputs["build-id"], run.outputs["reused-build"]) == (build_id, "true")
    assert f"Reusing build {build_id}, still " in run.log
    posts = [r for r in emulator.state()["requests"] if r["method"] == "POST" and r["path"] == "/v5/builds"]
    assert len(posts) == 1  # the killed run's; the rerun created none
    assert len(emulator.state()["builds"]) == 1


# --- an agent made elsewhere (docs/sgp-api.md#agents-made-elsewhere) ------------------------------------------------


def test_an_agent_made_elsewhere_is_built_by_the_id_of_its_deployments_build(
    emulator_factory: Any, tmp_path: Any
) -> None:
    emulator = emulator_factory(variants=["foreign-agent"], build_seconds=0.2)
    phase, env = _real_phase(emulator)
    created = phase.create(_spec(archive_path=_archive(tmp_path)))
    creates = [r for r in emulator.state()["requests"] if r["method"] == "POST" and r["path"] == "/v5/builds"]
    assert [r["status"] for r in creates] == [409, 200]
    (foreign,) = [b for b in emulator.state()["builds"] if b["image_tag"] == "elsewhere"]
    assert created.agent_id == foreign["agent_id"]
    assert any("already exists (made elsewhere)" in line for line in env.console.of("info"))


@pytest.mark.parametrize(
    ("body", "text", "expected"),
    [
        ({"detail": "taken", "agent_id": "agt_1"}, "taken", "agt_1"),
        ({"detail": {"msg": "taken", "agent_id": "agt_2"}}, "taken", "agt_2"),
        ({"detail": "agent_name 'x' is already in use (agent_id agt-3); send agent_id"}, "", "agt-3"),
        ({"detail": "exists as 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}, "", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        ({"detail": "an agent named 'x' already exists"}, "", None),
        ("<html>conflict</html>", "", None),
    ],
)
def test_the_id_a_conflict_names(body: Any, text: str, expected: str | None) -> None:
    assert id_from_conflict(ConflictError(f"409 Conflict: {text}", status_code=409, body=body)) == expected


def test_when_nothing_tells_the_agent_id_input_is_used_and_without_it_the_message_asks_for_it() -> None:
    client = FakeClient()
    client.create_errors = [ConflictError("409: an agent named 'echo-bot' already exists", status_code=409)]
    phase, _ = _phase(client)
    with pytest.raises(InputError, match="set the agent-id input"):
        phase.create(_spec())
    assert [c for c in client.names() if c == "create_build"] == ["create_build"]

    client = FakeClient()
    env = phase_env(client)
    phase = BuildPhase(env, timeout=30, agent_id="agt-given")
    phase.create(_spec())
    (sent,) = [fields for name, fields in client.calls if name == "create_build"]
    assert sent["agent_id"] == "agt-given" and sent["agent_name"] is None


@pytest.mark.timeout(30)
def test_a_build_only_run_without_wait_takes_up_an_unfinished_build_without_following_it(
    tmp_path: Path, emulator_factory: Any
) -> None:
    """`wait: false` on a build-only run ends at once, also when it takes up a build an earlier run left running."""
    emulator = emulator_factory(build_seconds=60)
    workspace = Workspace(tmp_path, emulator)
    first = workspace.run("push", workspace.push("feature"), wait="false")
    assert (first.exit_code, first.outputs["reused-build"]) == (0, "false"), first.log
    second = workspace.run("push", workspace.push("feature"), wait="false")
    assert (second.exit_code, second.result) == (0, "success"), second.log
    assert (second.outputs["build-id"], second.outputs["reused-build"]) == (first.outputs["build-id"], "true")
    assert second.outputs["build-status"] in {"queued", "running"}
    assert len(emulator.state()["builds"]) == 1
