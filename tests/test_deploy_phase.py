"""The deploy phase: create (preview / production), new events and log lines printed once, failure, timeout."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from sgp_action.api.models import DeployEvent, LogPage
from sgp_action.errors import Cancelled, DeploymentFailed, OperationTimeout, ServerError
from sgp_action.run.cancel import CancelToken
from sgp_action.run.deploy_phase import DeployPhase, DeploySpec, format_event, format_log_line
from tests.fakes import FakeClient, deployment, log_line, phase_env, ticking_clock

EXPIRY = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)


def _phase(client: FakeClient, *, timeout: float = 30.0, token: CancelToken | None = None, clock: Any = None) -> Any:
    env = phase_env(client, token=token, clock=clock)
    return DeployPhase(env, timeout=timeout), env.console


def _spec(preview: bool = True) -> DeploySpec:
    return DeploySpec(
        manifest_text="agent: {name: echo-bot}\n",
        environment_text="schema_version: v1\n",
        build_id="b-1",
        preview=preview,
        preview_label="pr-7",
        expires_at=EXPIRY,
    )


@pytest.mark.parametrize("preview", [True, False])
def test_create_sends_preview_fields_only_for_previews(preview: bool) -> None:
    client = FakeClient()
    phase, _console = _phase(client)
    created = phase.create(_spec(preview))
    sent = client.calls[0][1]
    assert sent["manifest_file"] == "agent: {name: echo-bot}\n" and sent["environment_config"] == "schema_version: v1\n"
    assert sent["build_id"] == "b-1" and sent["preview"] is preview
    assert (sent["preview_label"], sent["expires_at"]) == (("pr-7", EXPIRY) if preview else (None, None))
    assert phase.remote.deployment_id == created.id == "d-1"


@pytest.mark.parametrize(
    "final", ["healthy", "HEALTHY", "completed", "Completed", "succeeded", "Ready", "ACTIVE", "deployed"]
)
def test_success_words_in_any_case(final: str) -> None:
    client = FakeClient()
    client.deploy_statuses = ["PENDING", "Running", "in_progress", final]
    phase, console = _phase(client)
    result = phase.wait(deployment())
    # the output is the platform page's word, whatever the server's spelling (docs/sgp-api.md#deployment-statuses)
    assert result.status == "healthy" and result.server_status == final.lower()
    assert phase.report.deployment_status == "healthy" and phase.remote.deployment_id is None
    assert console.of("warning") == []


@pytest.mark.parametrize("final", ["error", "CrashLoopBackOff", "Failed", "ImagePullBackOff"])
def test_failure_words_in_any_case(final: str) -> None:
    client = FakeClient()
    client.deploy_statuses = ["pending", "running", final]
    phase, _ = _phase(client)
    with pytest.raises(DeploymentFailed) as info:
        phase.wait(deployment())
    said = "" if final == "Failed" else f" (the server said '{final.lower()}')"
    assert f"ended with status failed{said} after" in str(info.value)
    assert phase.report.deployment_status == "failed"


def test_an_unknown_word_is_warned_once_and_polled_until_the_deadline_naming_it() -> None:
    client = FakeClient()
    client.deploy_statuses = ["pending", "Warming_Up", "warming_up", "WARMING_UP"]
    phase, console = _phase(client, timeout=6.0, clock=ticking_clock())
    with pytest.raises(OperationTimeout) as info:
        phase.wait(deployment())
    (warning,) = console.of("warning")
    assert "'warming_up'" in warning and "deploy-timeout" in warning
    assert "last status seen warming_up" in str(info.value)
    assert phase.report.deployment_status == "warming_up"


def test_new_events_and_log_lines_are_printed_once_and_the_cursor_is_kept() -> None:
    client = FakeClient()
    client.deploy_statuses = ["pending", "in_progress", "healthy"]
    scheduled = DeployEvent(type="Normal", reason="Scheduled", message="assigned to node-1")
    pulled = DeployEvent(type="Normal", reason="Pulled", message="image pulled")
    client.deploy_events = [[scheduled], [scheduled, pulled], [scheduled, pulled]]
    client.log_pages = [
        LogPage(lines=(log_line(1, "helm install"), log_line(2, "waiting")), next_cursor="c2", has_more=True),
        LogPage(lines=(log_line(3, "pod ready"),), next_cursor="c3", has_more=False),
        LogPage(lines=(), next_cursor="", has_more=False),  # an empty cursor must not reset to the start
        LogPage(lines=(log_line(3, "pod ready"), log_line(4, "healthy")), next_cursor="c4", has_more=False),
    ]
    phase, console = _phase(client)
    phase.wait(deployment())
    assert console.of("server") == [
        format_event(scheduled),
        "INFO  helm install",
        "INFO  waiting",
        "INFO  pod ready",
        format_event(pulled),
        "INFO  healthy",
    ]
    cursors = [value for name, value in client.calls if name == "deployment_logs"]
    assert cursors[:4] == ["", "c2", "c3", "c3"]


def test_failure_shows_events_and_log_tail() -> None:
    client = FakeClient()
    client.deploy_statuses = ["in_progress", "FAILED"]
    crash = DeployEvent(type="Warning", reason="BackOff", message="Back-off restarting failed container")
    client.deploy_events = [[crash], [crash]]
    client.log_pages = [LogPage(lines=(log_line(1, "panic: boom", "ERROR"),), next_cursor="c1", has_more=False)]
    phase, _ = _phase(client)
    with pytest.raises(DeploymentFailed) as info:
        phase.wait(deployment())
    message = str(info.value)
    assert "ended with status failed" in message
    assert "Warning BackOff: Back-off restarting failed container" in message and "ERROR panic: boom" in message
    assert phase.report.deployment_status == "failed"


def test_timeout_fails_with_the_last_events_and_leaves_the_deployment() -> None:
    client = FakeClient()
    client.deploy_statuses = ["in_progress"]
    client.deploy_events = [[DeployEvent(type="Normal", reason="Pulling", message="pulling image")]]
    clock = ticking_clock()
    phase, _ = _phase(client, timeout=3.0, clock=clock)
    with pytest.raises(OperationTimeout, match="deploy-timeout") as info:
        phase.wait(deployment())
    assert "Normal Pulling: pulling image" in str(info.value)
    assert "delete_deployment" not in client.names()


def test_cancellation_stops_the_wait() -> None:
    client = FakeClient()
    client.deploy_statuses = ["in_progress"]
    token = CancelToken()
    phase, _ = _phase(client, token=token)
    phase.poll_interval = 30.0
    phase.remote.deploying("d-1")
    import threading

    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(Cancelled):
        phase.wait(deployment())
    assert phase.remote.deployment_id == "d-1"  # still registered: the pipeline deletes it


class _SteppingToken(CancelToken):
    """A token whose sleeps advance a fake clock instead of waiting, and are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_status_is_read_every_half_second_and_logs_every_poll_interval() -> None:
    """The step ends within 0.5 s of the deployment turning healthy, whatever poll-interval says
    (README.md#performance)."""
    client = FakeClient()
    client.deploy_statuses = ["pending"] + ["in_progress"] * 12 + ["healthy"]
    token = _SteppingToken()
    phase, _ = _phase(client, token=token, clock=lambda: token.now)
    phase.poll_interval = 5.0
    phase.wait(deployment())
    assert client.names().count("get_deployment") == 14
    assert token.sleeps == [0.5] * 13
    # Log pages at 0 s and 5 s while in progress, then once more after the terminal status.
    assert client.names().count("deployment_logs") == 3


def test_a_poll_interval_shorter_than_the_status_interval_is_kept() -> None:
    client = FakeClient()
    client.deploy_statuses = ["in_progress", "in_progress", "healthy"]
    token = _SteppingToken()
    phase, _ = _phase(client, token=token, clock=lambda: token.now)
    phase.poll_interval = 0.2
    phase.wait(deployment())
    assert token.sleeps == [0.2, 0.2]
    assert client.names().count("deployment_logs") == 3


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (DeployEvent(type="Warning", reason="BackOff", message="restarting"), "Warning BackOff: restarting"),
        (DeployEvent(message="just text"), "just text"),
        (DeployEvent(reason="Pulled"), "Pulled"),
        (
            DeployEvent(type="Normal", reason="Started", message="ok", timestamp=EXPIRY),
            "[2026-01-01T08:00:00Z] Normal Started: ok",
        ),
    ],
)
def test_format_event(event: DeployEvent, expected: str) -> None:
    assert format_event(event) == expected


def test_format_log_line() -> None:
    assert format_log_line(log_line(1, "boom", "error")) == "ERROR boom"


@pytest.mark.parametrize("made", [True, False])
def test_an_ambiguous_create_failure_adopts_what_the_server_made_or_sends_again(made: bool) -> None:
    from datetime import timedelta

    client = FakeClient()
    client.create_errors = [ServerError("502 Bad Gateway", status_code=502)]
    now = datetime.now(timezone.utc)
    client.deployments = [
        deployment("pending", id="d-old", created_at=now - timedelta(hours=1)),  # an earlier run's: not ours
        deployment("pending", id="d-other-label", preview_label="pr-8", created_at=now),
    ]
    if made:
        client.deployments.insert(0, deployment("pending", id="d-made", created_at=now + timedelta(seconds=1)))
    phase, _ = _phase(client)
    created = phase.create(_spec())
    assert created.id == ("d-made" if made else "d-1")
    assert client.names().count("create_deployment") == (1 if made else 2)
    assert phase.remote.deployment_id == created.id
