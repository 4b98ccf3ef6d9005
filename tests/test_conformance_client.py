"""Our own client (`api.client`) through the same lifecycle the SDK conformance tests drive, both dialects."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sgp_action import errors
from sgp_action.api.client import SGPClient
from sgp_action.api.models import Phase
from tests.support import agent_yaml

MANIFEST, ENVIRONMENTS = agent_yaml()
DIALECTS = pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)


def client_for(emulator: Any, **options: Any) -> SGPClient:
    options.setdefault("max_retries", 0)
    return SGPClient.for_url(emulator.url, emulator.api_key, emulator.account_id, **options)


def until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@DIALECTS
def test_build_lifecycle(emulator: Any, make_context: Any) -> None:
    archive = make_context({"Dockerfile": "FROM alpine\nRUN echo built by our client\n"})
    sent: list[tuple[int, int]] = []
    with client_for(emulator) as client:
        build = client.create_build(
            image_name="echo",
            image_tag="v1",
            archive_path=archive,
            agent_name="echo-bot",
            build_args={"A": "b"},
            source={"source_commit": "c" * 40, "source_dirty": False},
            working_tree_hash="f" * 64,
            progress=lambda done, total: sent.append((done, total)),
        )
        assert build.id.startswith("build_") and build.status == "queued" and build.phase is Phase.IN_PROGRESS
        assert sent and sent[-1][0] == sent[-1][1]
        with client.open_build_logs(build.id) as stream:
            lines = list(stream)
        assert "built by our client" in lines and lines[-1].startswith("v1: digest: sha256:")
        done = client.get_build(build.id)
        assert done.status == "success" and done.phase is Phase.SUCCEEDED and done.image_url
        assert done.raw["source_dirty"] is False and done.source_commit == "c" * 40
        second = client.create_build(image_name="echo", image_url="r.example/echo:2", agent_id=build.agent_id)
        third = client.create_build(image_name="echo", image_url="r.example/echo:3", agent_id=build.agent_id)
        assert [b.id for b in client.list_builds(agent_name="echo-bot", limit=1)] == [build.id, second.id, third.id]
        assert [b.id for b in client.list_builds(working_tree_hash="f" * 64)] == [build.id]
        latest = next(client.list_builds(agent_name="echo-bot", limit=1, sort_by="created_at", sort_order="desc"))
        assert latest.id == third.id


@DIALECTS
def test_agent_name_rules(emulator: Any) -> None:
    with client_for(emulator) as client:
        first = client.create_build(image_name="echo", image_url="r.example/echo:1", agent_name="echo-bot")
        if emulator.dialect == "current":
            with pytest.raises(errors.ConflictError):
                client.create_build(image_name="echo", image_url="r.example/echo:1", agent_name="echo-bot")
        else:
            again = client.create_build(image_name="echo", image_url="r.example/echo:1", agent_name="echo-bot")
            assert again.agent_id == first.agent_id
        with pytest.raises(errors.NotFoundError):
            client.create_build(image_name="echo", image_url="r.example/echo:1", agent_id="no-such-agent")


@pytest.mark.parametrize(
    "emulator", [{"build_seconds": 3.0}, {"build_seconds": 3.0, "dialect": "legacy"}], indirect=True
)
def test_cancel(emulator: Any, make_context: Any) -> None:
    with client_for(emulator) as client:
        build = client.create_build(
            image_name="echo", archive_path=make_context({"Dockerfile": "FROM alpine\n"}), agent_name="echo-bot"
        )
        before = client.cancel_build(build.id)
        assert before.status in ("queued", "running")
        seen = until(lambda: client.get_build(build.id).status == "cancelled", "cancelled")
        assert seen and client.get_build(build.id).phase is Phase.FAILED


@DIALECTS
def test_deployment_lifecycle(emulator: Any) -> None:
    with client_for(emulator) as client:
        build = client.create_build(image_name="echo", image_url="r.example/echo:1", agent_name="echo-bot")
        expires = datetime.now(timezone.utc) + timedelta(hours=2)
        preview = client.create_deployment(
            manifest_file=MANIFEST,
            environment_config=ENVIRONMENTS,
            build_id=build.id,
            preview=True,
            preview_label="PR #7",
            expires_at=expires,
        )
        assert preview.status == "pending" and preview.is_preview and preview.preview_label == "pr-7"
        assert preview.namespace == "team-echo" and (preview.helm_release_name or "").startswith("echo-bot-pr-7-")
        assert preview.expires_at is not None and abs(preview.expires_at - expires) < timedelta(milliseconds=1)
        healthy = until(lambda: (d := client.get_deployment(preview.id)).phase is Phase.SUCCEEDED and d, "healthy")
        assert healthy.status == "healthy" and [e.reason for e in healthy.events][:2] == ["Scheduled", "Pulling"]
        page = client.deployment_logs(preview.id, limit=2)
        lines = list(page.lines)
        while page.has_more:
            page = client.deployment_logs(preview.id, cursor=page.next_cursor, limit=2)
            lines += page.lines
        assert len(lines) >= 5 and [line.id for line in lines] == sorted({line.id for line in lines})
        again = client.deployment_logs(preview.id, cursor=page.next_cursor)
        assert again.lines == () and again.next_cursor == page.next_cursor
        production = client.create_deployment(
            manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build.id
        )
        assert not production.is_preview and production.helm_release_name == "echo-bot"
        until(lambda: client.get_deployment(production.id).phase is Phase.SUCCEEDED, "production healthy")
        newer = client.create_deployment(manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build.id)
        assert client.get_deployment(production.id).status == "superseded"
        assert [d.id for d in client.list_deployments(preview_label="pr-7", limit=1)] == [preview.id]
        assert [d.id for d in client.list_deployments(limit=1)] == [preview.id, production.id, newer.id]
        assert client.delete_deployment(preview.id).status == "deleted"
        for gone in (preview.id, production.id):
            with pytest.raises(errors.ValidationError):
                client.delete_deployment(gone)
        with pytest.raises(errors.NotFoundError):
            client.get_deployment("deploy_unknown")


@DIALECTS
def test_errors_map_to_the_action_exceptions(emulator_factory: Any, make_context: Any, emulator: Any) -> None:
    for key, account in (("wrong-key", emulator.account_id), (emulator.api_key, "other-account")):
        with SGPClient.for_url(emulator.url, key, account, max_retries=0) as client, pytest.raises(errors.AuthError):
            client.get_build("build_x")
    with client_for(emulator) as client, pytest.raises(errors.ValidationError) as invalid:
        client.create_deployment(
            manifest_file="agent: [", environment_config=ENVIRONMENTS, image_name="e", image_tag="t"
        )
    assert "not valid YAML" in str(invalid.value)
    small = emulator_factory(max_upload_bytes=64 * 1024, dialect=emulator.dialect)
    with client_for(small) as client, pytest.raises(errors.PayloadTooLargeError):
        client.create_build(image_name="echo", archive_path=make_context(raw=os.urandom(200_000)), agent_name="a")


def test_reads_retry_through_faults(emulator: Any) -> None:
    emulator.set_faults(["rate-limit=2", "http-500=0.3"])
    with client_for(emulator, max_retries=8, backoff_base=0.01, backoff_cap=0.05) as client:
        assert list(client.list_builds()) == []
        with pytest.raises(errors.NotFoundError):
            client.get_build("build_unknown")
    assert 429 in [r["status"] for r in emulator.state()["requests"]]


def test_a_lost_create_answer_is_not_retried_blindly(emulator: Any, make_context: Any) -> None:
    emulator.set_faults(["lose-create-response"])
    with client_for(emulator, max_retries=3, backoff_base=0.01) as client, pytest.raises(errors.ApiError):
        client.create_build(
            image_name="echo", archive_path=make_context({"Dockerfile": "FROM alpine\n"}), agent_name="echo-bot"
        )
    assert len(emulator.state()["builds"]) == 1  # one create reached the server: no duplicate build


def test_sse_drop_closes_the_stream_early(emulator: Any, make_context: Any) -> None:
    with client_for(emulator) as client:
        build = client.create_build(
            image_name="echo", archive_path=make_context({"Dockerfile": "FROM alpine\n"}), agent_name="echo-bot"
        )
        emulator.set_faults(["sse-drop-after=2"])
        with client.open_build_logs(build.id) as stream:
            assert len(list(stream)) == 2


def test_deploy_fail_is_a_failed_phase(emulator: Any) -> None:
    emulator.set_faults(["deploy-fail"])
    with client_for(emulator) as client:
        build = client.create_build(image_name="echo", image_url="r.example/echo:1", agent_name="echo-bot")
        deploy = client.create_deployment(manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build.id)
        failed = until(lambda: (d := client.get_deployment(deploy.id)).phase is Phase.FAILED and d, "failed")
        assert failed.status == "failed" and any(e.reason == "CrashLoopBackOff" for e in failed.events)
