"""Teardown and replace-previous: only this label's active previews, re-checked client-side, 400/404 = gone."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from sgp_action.api.client import SGPClient
from sgp_action.ci.report import Report
from sgp_action.ci.runner import Runner
from sgp_action.errors import NotFoundError, ValidationError
from sgp_action.run.teardown import (
    delete_all,
    delete_quietly,
    previews_with_label,
    replace_previous,
    run_teardown,
    teardown,
)
from tests.fakes import T0, FakeClient, deployment, phase_env
from tests.hostile import cycling_pages, run_action, serve
from tests.support import agent_yaml


def _env(client: FakeClient) -> Any:
    return phase_env(client)


def test_teardown_deletes_only_active_previews_with_exactly_this_label() -> None:
    client = FakeClient()
    client.deployments = [
        deployment("healthy", id="d-1"),
        deployment("failed", id="d-2"),
        deployment("DELETED", id="d-3"),
        deployment("superseded", id="d-4"),
        deployment("cancelled", id="d-5"),
        # An older server ignored the filter (docs/sgp-api.md#older-servers-ignore-unknown-filters): other labels and
        # production records come back too.
        deployment("healthy", id="d-6", preview_label="pr-70"),
        deployment("healthy", id="d-7", preview_label=None, expires_at=None),
        deployment("pending", id="d-8"),
    ]
    env = _env(client)
    assert teardown(env, "pr-7") == ["d-1", "d-2", "d-8"]
    assert client.calls[0] == (
        "list_deployments",
        {"agent_name": None, "preview_label": "pr-7", "sort_by": "created_at", "sort_order": "desc"},
    )
    assert [v for n, v in client.calls if n == "delete_deployment"] == ["d-1", "d-2", "d-8"]
    assert json.loads(env.report.outputs()["deleted"]) == ["d-1", "d-2", "d-8"]
    assert env.report.preview_label == "pr-7"


def test_already_gone_on_delete_is_not_an_error_and_not_reported_deleted() -> None:
    client = FakeClient()
    client.deployments = [deployment("healthy", id="d-1"), deployment("healthy", id="d-2"), deployment(id="d-3")]
    client.delete_errors = {
        "d-1": ValidationError("deployment is already DELETED", status_code=400),
        "d-2": NotFoundError("not found", status_code=404),
    }
    env = _env(client)
    assert teardown(env, "pr-7") == ["d-3"]
    assert json.loads(env.report.outputs()["deleted"]) == ["d-3"]


def test_nothing_to_delete_still_writes_an_empty_array() -> None:
    env = _env(FakeClient())
    assert teardown(env, "pr-7") == []
    assert env.report.outputs()["deleted"] == "[]"
    assert env.console.of("info") == ["No active preview labelled pr-7 to delete"]


def test_replace_previous_keeps_the_new_preview_and_newer_ones() -> None:
    client = FakeClient()
    current = deployment("healthy", id="d-new", created_at=T0)
    client.deployments = [
        deployment("healthy", id="d-newer", created_at=T0 + timedelta(minutes=1)),
        current,
        deployment("healthy", id="d-old", created_at=T0 - timedelta(hours=1)),
        deployment("deleted", id="d-older", created_at=T0 - timedelta(hours=2)),
    ]
    env = _env(client)
    assert replace_previous(env, current) == ["d-old"]
    assert env.report.deleted == ["d-old"]


def test_teardown_of_one_agent_leaves_the_other_agents_previews_with_the_label() -> None:
    """A monorepo PR has a preview per changed agent, all labelled pr-7: each agent's teardown deletes its own."""
    client = FakeClient()
    client.deployments = [
        deployment("healthy", id="d-mine", agent_name="alpha"),
        deployment("healthy", id="d-other", agent_name="beta"),
        deployment("healthy", id="d-unknown"),  # the record echoes no manifest: the server's filter decided
    ]
    env = _env(client)
    assert teardown(env, "pr-7", agent_name="alpha") == ["d-mine", "d-unknown"]
    assert client.calls[0][1]["agent_name"] == "alpha"


def test_replace_previous_only_replaces_previews_of_the_same_agent() -> None:
    client = FakeClient()
    current = deployment("healthy", id="d-new", created_at=T0, agent_name="alpha")
    client.deployments = [
        current,
        deployment("healthy", id="d-beta", created_at=T0 - timedelta(minutes=5), agent_name="beta"),
        deployment("healthy", id="d-alpha-old", created_at=T0 - timedelta(hours=1), agent_name="alpha"),
    ]
    assert replace_previous(_env(client), current) == ["d-alpha-old"]


def _dry_run(client: FakeClient) -> str:
    stream = io.StringIO()
    settings = SimpleNamespace(
        preview_label="pr-7", dry_run=True, manifest=Path("/nonexistent/manifest.yaml"), require_credentials=print
    )
    ctx = SimpleNamespace(settings=settings, client=client, report=Report(), runner=Runner(environ={}, stream=stream))
    assert run_teardown(ctx) == "success"  # type: ignore[arg-type]
    assert ctx.report.deleted == []
    return stream.getvalue()


def test_a_dry_run_lists_what_the_real_run_would_delete_and_nothing_already_gone() -> None:
    client = FakeClient()
    statuses = {"d-1": "healthy", "d-2": "failed", "d-3": "DELETED", "d-4": "SUPERSEDED", "d-5": "cancelled"}
    client.deployments = [deployment(status, id=name) for name, status in {**statuses, "d-8": "pending"}.items()]
    log = _dry_run(client)
    assert [line.split()[2] for line in log.splitlines() if line.startswith("would delete")] == ["d-1", "d-2", "d-8"]
    assert "delete_deployment" not in client.names()


def test_a_dry_run_with_only_terminal_previews_says_there_is_nothing_to_delete() -> None:
    client = FakeClient()
    client.deployments = [deployment("DELETED", id="d-3"), deployment("CANCELLED", id="d-5")]
    log = _dry_run(client)
    assert "would delete" not in log and "No active preview labelled pr-7 to delete" in log


@pytest.mark.timeout(20)
def test_teardown_against_cycling_cursors_exits_3_after_a_few_requests(tmp_path: Path) -> None:
    """Cursors A -> B -> A with has_more always true used to make teardown page forever."""
    with serve(cycling_pages) as server:
        run = run_action(server.url, tmp_path, command="teardown", preview_label="pr-7")
    assert run.exit_code == 3
    assert "GET /v5/agentex/deployments: the server's paging looped" in run.log
    assert len(server.requests) <= 5
    assert not [r for r in server.requests if r.startswith("DELETE")]  # nothing deleted from a broken listing


def _live_previews(emulator: Any, count: int, label: str = "pr-7") -> list[str]:
    form = {"image_name": "echo-bot", "agent_name": "echo-bot", "image_url": "registry.example/echo-bot:1"}
    build = requests.post(
        f"{emulator.url}/v5/builds", headers=emulator.headers, files={k: (None, v) for k, v in form.items()}
    )
    manifest, environments = agent_yaml("echo-bot")
    body = {"manifest_file": manifest, "environment_config": environments, "build_id": build.json()["id"]}
    made = []
    for _ in range(count):
        preview = {**body, "preview": True, "preview_label": label}
        answer = requests.post(f"{emulator.url}/v5/agentex/deployments", headers=emulator.headers, json=preview)
        assert answer.status_code == 200, answer.text
        made.append(str(answer.json()["id"]))
    return made


@pytest.mark.parametrize("variant", ["", "delete-ended-404", "delete-ended-409"])
def test_a_preview_deleted_meanwhile_is_reported_gone_whatever_the_server_answers(
    emulator_factory: Any, variant: str
) -> None:
    emulator = emulator_factory(variants=[variant] if variant else [])
    gone, live = _live_previews(emulator, 2)
    with SGPClient.for_url(emulator.url, emulator.api_key, emulator.account_id, max_retries=0) as sgp:
        listed = previews_with_label(sgp, "pr-7")  # then a parallel job deletes one of them
        sgp.delete_deployment(gone)
        env = phase_env(sgp)
        assert delete_all(env, listed) == [live]
        assert f"Deployment {gone} (pr-7) was already gone" in env.console.of("info")
        assert delete_quietly(sgp, gone) is False
    codes = [r["status"] for r in emulator.state()["requests"] if r["method"] == "DELETE" and gone in r["path"]]
    refused = {"": 400, "delete-ended-404": 404, "delete-ended-409": 409}[variant]
    assert codes == [200, refused, refused]
