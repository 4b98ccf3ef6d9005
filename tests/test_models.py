"""Typed API records: both API generations, status classification, timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sgp_action.api.models import (
    Build,
    DeployEvent,
    Deployment,
    LogLine,
    LogPage,
    Phase,
    UndeployedAgent,
    deploy_status_word,
)
from sgp_action.api.times import format_datetime, parse_datetime
from sgp_action.errors import ApiError, BadAnswerError

UTC = timezone.utc


@pytest.mark.parametrize(
    ("data", "expected_id", "expected_status"),
    [
        ({"id": "b1", "build_status": "queued"}, "b1", "queued"),  # SDK 0.7.0
        # oldest generation, any case (docs/sgp-api.md#build-id-field, docs/sgp-api.md#build-status-field)
        ({"build_id": "b2", "status": "SUCCESS"}, "b2", "success"),
        ({"build_id": "b3", "build_status": "Running"}, "b3", "running"),  # middle generation
        ({"id": "b4", "build_id": "old", "build_status": "failed", "status": "x"}, "b4", "failed"),  # id wins
        ({"id": "b5"}, "b5", "unknown"),
        ({"id": 42, "status": " Timed_Out "}, "42", "timed_out"),
    ],
)
def test_build_accepts_both_api_shapes(data: dict[str, object], expected_id: str, expected_status: str) -> None:
    build = Build.from_api(data)
    assert (build.id, build.status) == (expected_id, expected_status)
    assert build.raw == data


def test_build_fields() -> None:
    build = Build.from_api(
        {
            "id": "b1",
            "build_status": "success",
            "agent_name": "hello",
            "agent_id": "agent-1",
            "image_name": "hello-img",
            "image_tag": "abc1234",
            "image_url": "registry/hello-img:abc1234",
            "working_tree_hash": "f" * 64,
            "source_commit": "abc1234def",
            "created_at": "2026-01-02T03:04:05.123Z",
            "extra": {"ignored": True},
        }
    )
    assert build.agent_name == "hello" and build.agent_id == "agent-1"
    assert (build.image_name, build.image_tag, build.image_url) == (
        "hello-img",
        "abc1234",
        "registry/hello-img:abc1234",
    )
    assert build.working_tree_hash == "f" * 64 and build.source_commit == "abc1234def"
    assert build.created_at == datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)


@pytest.mark.parametrize("data", [{"build_status": "queued"}, {"id": "", "status": "x"}, {"id": None}])
def test_build_without_id_is_an_api_error(data: dict[str, object]) -> None:
    with pytest.raises(BadAnswerError, match="the server sent a build record this action cannot read: it has no id"):
        Build.from_api(data)


def test_non_object_is_an_api_error() -> None:
    with pytest.raises(BadAnswerError, match=r"build record .*: it is an array \(\"\['b1'\]\"\), not an object"):
        Build.from_api(["b1"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("success", Phase.SUCCEEDED),
        ("SUCCESS", Phase.SUCCEEDED),
        ("failed", Phase.FAILED),
        ("cancelled", Phase.FAILED),
        ("timed_out", Phase.FAILED),
        ("error", Phase.FAILED),
        ("delete_failed", Phase.FAILED),
        ("deleting", Phase.FAILED),
        ("queued", Phase.IN_PROGRESS),
        ("running", Phase.IN_PROGRESS),
        ("cancelling", Phase.IN_PROGRESS),
        ("unknown", Phase.IN_PROGRESS),
        ("brand_new_word", Phase.IN_PROGRESS),
    ],
)
def test_build_phase(status: str, phase: Phase) -> None:
    assert Build.from_api({"id": "b", "build_status": status}).phase is phase


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("healthy", Phase.SUCCEEDED),
        ("HEALTHY", Phase.SUCCEEDED),
        ("completed", Phase.SUCCEEDED),
        ("failed", Phase.FAILED),
        ("CANCELLED", Phase.FAILED),
        ("error", Phase.FAILED),
        ("timed_out", Phase.FAILED),
        ("DELETED", Phase.FAILED),
        ("SUPERSEDED", Phase.FAILED),
        ("PENDING", Phase.IN_PROGRESS),
        ("in_progress", Phase.IN_PROGRESS),
        # never success without confirmation (docs/sgp-api.md#deployment-status-spellings)
        ("running", Phase.IN_PROGRESS),
        ("deploying", Phase.IN_PROGRESS),
        # other plausible words (docs/sgp-api.md#deployment-status-words)
        ("Ready", Phase.SUCCEEDED),
        ("succeeded", Phase.SUCCEEDED),
        ("Active", Phase.SUCCEEDED),
        ("DEPLOYED", Phase.SUCCEEDED),
        ("CrashLoopBackOff", Phase.FAILED),
        ("canceled", Phase.FAILED),
        ("In-Progress", Phase.IN_PROGRESS),
        ("warming_up", Phase.IN_PROGRESS),
    ],
)
def test_deployment_phase(status: str, phase: Phase) -> None:
    deployment = Deployment.from_api({"id": "d", "status": status})
    assert deployment.server_status == status.lower()
    assert deployment.status == (deploy_status_word(status) or status.lower())
    assert deployment.phase is phase
    assert deployment.status_known is (status != "warming_up")


def test_deployment_fields_and_events() -> None:
    deployment = Deployment.from_api(
        {
            "id": "d1",
            "status": "IN_PROGRESS",
            "build_id": "b1",
            "preview_label": "pr-7",
            "expires_at": "2026-01-02T11:00:00Z",
            "helm_release_name": "hello-pr-7-ab12",
            "namespace": "agents",
            "created_at": "2026-01-02T03:00:00+00:00",
            "deploy_events": [
                {
                    "type": "Normal",
                    "reason": "Pulling",
                    "message": "pulling image",
                    "timestamp": "2026-01-02T03:00:01Z",
                },
                {"reason": "Scheduled"},
                "not an event",
            ],
        }
    )
    assert deployment.status == "in_progress"
    assert (deployment.build_id, deployment.preview_label, deployment.namespace) == ("b1", "pr-7", "agents")
    assert deployment.helm_release_name == "hello-pr-7-ab12"
    assert deployment.expires_at == datetime(2026, 1, 2, 11, tzinfo=UTC)
    assert deployment.events == (
        DeployEvent("Normal", "Pulling", "pulling image", datetime(2026, 1, 2, 3, 0, 1, tzinfo=UTC)),
        DeployEvent(None, "Scheduled", None, None),
    )
    assert deployment.is_preview


@pytest.mark.parametrize(
    ("data", "preview"),
    [
        ({"preview_label": "pr-1"}, True),
        ({"expires_at": "2026-01-01T00:00:00Z"}, True),
        ({"preview_label": None, "expires_at": None}, False),
        ({}, False),
    ],
)
def test_is_preview(data: dict[str, object], preview: bool) -> None:
    assert Deployment.from_api({"id": "d", "status": "healthy", **data}).is_preview is preview


def test_deployment_without_id_is_an_api_error() -> None:
    with pytest.raises(ApiError):
        Deployment.from_api({"status": "healthy"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-04T05:06:07Z", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06:07z", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06:07.5Z", datetime(2026, 3, 4, 5, 6, 7, 500000, tzinfo=UTC)),
        ("2026-03-04T05:06:07.123456789Z", datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)),
        ("2026-03-04T05:06:07+02:00", datetime(2026, 3, 4, 3, 6, 7, tzinfo=UTC)),
        ("2026-03-04T05:06:07", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),  # naive: taken as UTC
        ("2026-03-04", datetime(2026, 3, 4, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
        (None, None),
        (12345, datetime(1970, 1, 1, 3, 25, 45, tzinfo=UTC)),  # epoch seconds (docs/sgp-api.md#timestamp-formats)
    ],
)
def test_parse_datetime(text: object, expected: datetime | None) -> None:
    assert parse_datetime(text) == expected
    parsed = parse_datetime(text)
    assert parsed is None or parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC), "2026-01-02T03:04:05.000600Z"),
    ],
)
def test_format_datetime(value: datetime, expected: str) -> None:
    assert format_datetime(value) == expected
    assert parse_datetime(expected) == value.replace(tzinfo=value.tzinfo or UTC)


def test_log_page_reads_lines_and_keeps_cursor_when_next_is_empty() -> None:
    data = {
        "deployment_id": "d1",
        "lines": [
            {"id": "0001", "message": "starting", "log_level": "INFO", "timestamp": "2026-01-01T00:00:00Z"},
            {"id": "0002", "message": "ready"},
            "plain line",
        ],
        "next_cursor": "",
        "has_more": False,
    }
    page = LogPage.from_api(data, previous_cursor="0000")
    assert page.next_cursor == "0000"  # docs/sgp-api.md#deployment-log-cursor: never reset to empty
    assert not page.has_more
    assert page.lines == (
        LogLine("0001", "starting", "INFO", datetime(2026, 1, 1, tzinfo=UTC)),
        LogLine("0002", "ready", None, None),
        LogLine("", "plain line", None, None),
    )
    assert LogPage.from_api({**data, "next_cursor": "0002", "has_more": True}, previous_cursor="0000").next_cursor == (
        "0002"
    )
    assert LogPage.from_api({"lines": [], "next_cursor": None}).next_cursor == ""


def test_undeployed_agent() -> None:
    agent = UndeployedAgent.from_api(
        {"agent_name": "hello", "latest_build": {"build_id": "b9", "status": "SUCCESS"}, "total_builds": 3}
    )
    assert agent.agent_name == "hello" and agent.total_builds == 3
    assert agent.latest_build.id == "b9" and agent.latest_build.phase is Phase.SUCCEEDED
    with pytest.raises(ApiError):
        UndeployedAgent.from_api({"agent_name": "x", "latest_build": None, "total_builds": 1})


def test_records_are_frozen() -> None:
    build = Build.from_api({"id": "b", "status": "queued"})
    with pytest.raises(AttributeError):
        build.status = "success"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("record", "agent"),
    [
        ({"manifest_file": "build: {}\nagent:\n  name: echo-bot\n  acp_type: sync\n"}, "echo-bot"),
        ({"manifest_file": "agent:\n  description: x\n  temporal:\n    name: wf\n  name: outer\n"}, "outer"),
        ({"agent_name": "given", "manifest_file": "agent: {name: other}\n"}, "given"),
        ({"manifest_file": "agent: [not, a, mapping]\n"}, None),
        ({"manifest_file": "agent: {name: [\n"}, None),  # not YAML
        ({"manifest_file": ""}, None),
        ({}, None),
    ],
)
def test_deployment_agent_name_from_the_echoed_manifest(record: dict[str, Any], agent: str | None) -> None:
    assert Deployment.from_api({"id": "d-1", "status": "healthy", **record}).agent_name == agent


@pytest.mark.parametrize(
    ("reader", "data", "words"),
    [
        (LogPage.from_api, {"lines": 5}, "a deployment logs answer this action cannot read: 'lines' is a number ('5')"),
        (LogPage.from_api, {"lines": "abc"}, "'lines' is a string ('abc'), not an array"),
        (LogPage.from_api, {"lines": [{"id": "1"}, 7]}, "lines[1] is a number ('7')"),
        (LogPage.from_api, {"lines": [], "has_more": "false"}, "'has_more' is a string ('false'), not a boolean"),
        (LogPage.from_api, {"lines": [], "next_cursor": {"a": 1}}, "'next_cursor' is an object"),
        (LogPage.from_api, [], "a deployment logs answer this action cannot read: it is an array"),
        (LogPage.from_api, {"lines": [{"message": ["x"]}]}, "a deployment log line this action cannot read"),
        (Build.from_api, {"id": "b", "status": ["running"]}, "a build record this action cannot read: 'status'"),
        (Build.from_api, {"id": {"x": 1}}, "a build record this action cannot read: 'id' is an object"),
        (Deployment.from_api, {"id": "d", "deploy_events": 3}, "'deploy_events' is a number ('3'), not an array"),
        (Deployment.from_api, {"id": "d", "namespace": []}, "a deployment record this action cannot read"),
        (UndeployedAgent.from_api, {"latest_build": 5}, "'latest_build' is a number ('5'), not an object"),
    ],
)
def test_wrong_types_are_a_bad_answer_saying_what_was_sent(reader: Any, data: Any, words: str) -> None:
    """`"lines": 5` used to raise TypeError (an internal error, exit 1); now exit 3 with what the server sent."""
    with pytest.raises(BadAnswerError) as caught:
        reader(data)
    assert words in str(caught.value)
    assert caught.value.exit_code == 3


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-01-02T03:04:05+0000", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.5-0130", "2026-01-02T04:34:05.500000Z"),
        ("2026-01-02T08:04:05+05", "2026-01-02T03:04:05Z"),
        ("2026-01-02 03:04:05Z", "2026-01-02T03:04:05Z"),
        (1767323045, "2026-01-02T03:04:05Z"),
        (1767323045.25, "2026-01-02T03:04:05.250000Z"),
        (1767323045250, "2026-01-02T03:04:05.250000Z"),  # milliseconds
        ("1767323045", "2026-01-02T03:04:05Z"),
    ],
)
def test_timestamps_as_epoch_numbers_and_compact_offsets(written: object, expected: str) -> None:
    # docs/sgp-api.md#timestamp-formats: the text handed to fromisoformat is one Python 3.10 reads too
    parsed = parse_datetime(written)
    assert parsed is not None and format_datetime(parsed) == expected


@pytest.mark.parametrize("written", [True, 1e30, "2026-13-01T00:00:00+0000", "soon", {"t": 1}])
def test_unreadable_timestamps_are_none(written: object) -> None:
    assert parse_datetime(written) is None
