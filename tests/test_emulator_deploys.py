"""The emulator's deployment endpoints, driven by the official SDK (scale-gp-beta 0.7.0)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import scale_gp_beta

from tests.support import agent_yaml, error_detail

MANIFEST, ENVIRONMENTS = agent_yaml()
INACTIVE = {"deleted", "cancelled", "superseded", "failed"}


def registered_build(client: Any, agent: str = "echo-bot") -> str:
    """A build that is successful at once (an image_url registration); returns its id in either dialect."""
    build = client.build.create(image_name=agent, agent_name=agent, image_url=f"r.example/{agent}:1")
    return str(build.id or build.build_id)


def create_deploy(client: Any, build: str | None = None, **fields: Any) -> Any:
    """Create an echo-bot deployment (of a fresh registered build unless `build` is given)."""
    fields.setdefault("manifest_file", MANIFEST)
    fields.setdefault("environment_config", ENVIRONMENTS)
    return client.deploy.create(build_id=build or registered_build(client), **fields)


def wait_status(client: Any, deploy_id: str, wanted: str) -> list[str]:
    """Poll until the status is `wanted` (any case); return the distinct statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.deploy.retrieve(deploy_id).status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status.lower() == wanted.lower():
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{deploy_id} never reached {wanted}; saw {seen}")


def all_log_lines(client: Any, deploy_id: str, limit: int) -> list[Any]:
    lines: list[Any] = []
    cursor = ""
    while True:
        page = client.deploy.logs(deploy_id, limit=limit, **({"cursor": cursor} if cursor else {}))
        lines += page.lines
        assert page.has_more == (len(page.lines) == limit)
        if not page.has_more:
            return lines
        cursor = page.next_cursor


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_preview_lifecycle(emulator: Any) -> None:
    client = emulator.sdk()
    build = registered_build(client)
    now = datetime.now(timezone.utc)
    created = client.deploy.create(
        manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build, preview=True, preview_label="PR #12"
    )
    pending, healthy = ("pending", "healthy") if emulator.dialect == "legacy" else ("PENDING", "HEALTHY")
    assert created.status == pending and created.id.startswith("deploy_")
    assert created.object == "agentex_cloud_deploy" and created.account_id == emulator.account_id
    assert created.preview_label == "pr-12" and created.namespace == "team-echo" and created.build_id == build
    assert re.fullmatch(r"echo-bot-pr-12-[0-9a-f]{4}", created.helm_release_name)
    assert created.manifest_file == MANIFEST and created.environment_config == ENVIRONMENTS
    assert now + timedelta(hours=8) <= created.expires_at <= now + timedelta(hours=8, minutes=1)
    seen = wait_status(client, created.id, healthy)
    in_progress = "in_progress" if emulator.dialect == "legacy" else "IN_PROGRESS"
    assert seen[0] == pending and in_progress in seen and seen[-1] == healthy
    events = client.deploy.retrieve(created.id).deploy_events
    assert [e.reason for e in events][:5] == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    assert all(e.type == "Normal" for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    lines = all_log_lines(client, created.id, limit=2)
    assert len(lines) >= 5
    assert [line.id for line in lines] == sorted({line.id for line in lines})
    assert all(line.log_level == "INFO" and line.timestamp for line in lines)
    deleted = client.deploy.delete(created.id)
    assert deleted.status.lower() == "deleted" and client.deploy.retrieve(created.id).status.lower() == "deleted"
    with pytest.raises(scale_gp_beta.BadRequestError):
        client.deploy.delete(created.id)


def test_log_cursor_returns_only_new_lines(emulator: Any) -> None:
    client = emulator.sdk()
    deploy = client.deploy.create(
        manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=registered_build(client)
    )
    wait_status(client, deploy.id, "HEALTHY")
    first = client.deploy.logs(deploy.id, limit=3)
    assert len(first.lines) == 3 and first.has_more is True and first.next_cursor == first.lines[-1].id
    rest = client.deploy.logs(deploy.id, cursor=first.next_cursor, limit=500)
    assert rest.has_more is False and rest.lines and rest.lines[0].id > first.lines[-1].id
    empty = client.deploy.logs(deploy.id, cursor=rest.next_cursor)
    assert empty.lines == [] and empty.next_cursor == rest.next_cursor  # an empty page keeps the cursor
    for bad in (0, 501):
        with pytest.raises(scale_gp_beta.UnprocessableEntityError):
            client.deploy.logs(deploy.id, limit=bad)


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_production_deploy_supersedes_the_previous_one(emulator: Any) -> None:
    client = emulator.sdk()
    build = registered_build(client)
    other_manifest, other_env = agent_yaml("other-bot")
    other = client.deploy.create(
        manifest_file=other_manifest, environment_config=other_env, build_id=registered_build(client, "other-bot")
    )
    preview = client.deploy.create(
        manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build, preview=True, preview_label="pr-1"
    )
    first = client.deploy.create(manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build)
    assert first.helm_release_name == "echo-bot" and first.expires_at is None and first.preview_label is None
    wait_status(client, first.id, "healthy")
    second = client.deploy.create(manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=build)
    assert client.deploy.retrieve(first.id).status.lower() == "superseded"
    assert client.deploy.retrieve(second.id).status.lower() in ("pending", "in_progress")
    assert client.deploy.retrieve(preview.id).status.lower() not in INACTIVE
    assert client.deploy.retrieve(other.id).status.lower() not in INACTIVE
    with pytest.raises(scale_gp_beta.BadRequestError) as refused:
        client.deploy.delete(first.id)
    assert "superseded" in error_detail(refused.value).lower()
    assert client.deploy.delete(second.id).status.lower() == "deleted"


def test_deploy_with_image_name_and_tag_needs_no_build(emulator: Any) -> None:
    client = emulator.sdk()
    deploy = client.deploy.create(
        manifest_file=MANIFEST, environment_config=ENVIRONMENTS, image_name="echo", image_tag="v2"
    )
    assert deploy.build_id is None
    wait_status(client, deploy.id, "HEALTHY")


@pytest.mark.parametrize("emulator", [{"build_seconds": 5.0}], indirect=True)
def test_deploy_needs_a_successful_build(emulator: Any, make_context: Any) -> None:
    client = emulator.sdk()
    with make_context({"Dockerfile": "FROM alpine\n"}).open("rb") as handle:
        running = client.build.create(image_name="echo", agent_name="echo-bot", context_archive=handle)
    with pytest.raises(scale_gp_beta.BadRequestError) as refused:
        client.deploy.create(manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=running.id)
    assert "only a successful build can be deployed" in error_detail(refused.value)
    with pytest.raises(scale_gp_beta.NotFoundError):
        client.deploy.create(manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id="build_unknown")


def env_with(
    principal: str = "    auth:\n      principal:\n        user_id: u1\n", namespace: str = "team-echo"
) -> str:
    return f"schema_version: v1\nenvironments:\n  prod:\n    kubernetes:\n      namespace: {namespace}\n{principal}"


IN_AN_HOUR = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
DEPLOY_VALIDATION = [
    ({"manifest_file": agent_yaml("other-bot")[0]}, "does not match the build's agent"),
    ({"manifest_file": "agent: [unclosed"}, "manifest_file is not valid YAML"),
    ({"manifest_file": "agent:\n  description: x\n"}, "manifest_file has no agent.name"),
    ({"manifest_file": "agent:\n  name: Echo_Bot\n"}, "must match ^[a-z0-9-]+$"),
    ({"environment_config": "environments: {"}, "environment_config is not valid YAML"),
    ({"environment_config": "- a list\n"}, "must be a YAML mapping"),
    ({"environment_config": "schema_version: v2\nenvironments: {}\n"}, "schema_version must be 'v1'"),
    ({"environment_config": "schema_version: v1\nenvironments: {}\n"}, "non-empty 'environments' mapping"),
    ({"environment_config": env_with(principal="")}, "auth.principal is required"),
    (
        {
            "environment_config": env_with(
                "    auth:\n      principal:\n        user_id: u\n        service_account_id: s\n"
            )
        },
        "exactly one of user_id or service_account_id",
    ),
    ({"environment_config": env_with("    auth:\n      principal:\n        account_id: a\n")}, "exactly one of"),
    ({"environment_config": env_with(namespace="team_echo")}, "must use [a-z0-9.-]"),
    ({"environment_config": env_with(namespace="-team")}, "not start or end with '-'"),
    ({"environment_config": env_with(namespace="a" * 64)}, "at most 63 characters"),
    ({"preview_label": "pr-1"}, "preview_label only apply to preview deployments"),
    ({"expires_at": IN_AN_HOUR}, "expires_at only apply to preview deployments"),
    ({"preview": True, "preview_label": "!!!"}, "has no letters or digits left"),
    ({"preview": True, "expires_at": "2020-01-01T00:00:00Z"}, "is in the past"),
    ({"preview": True, "expires_at": "tomorrow"}, "is not an ISO 8601 datetime"),
    ({"build_id": None}, "send build_id, or both image_name and image_tag"),
    ({"build_id": None, "image_name": "echo"}, "send build_id, or both image_name and image_tag"),
]


@pytest.mark.parametrize(("change", "detail"), DEPLOY_VALIDATION)
def test_create_validation(emulator: Any, change: dict[str, Any], detail: str) -> None:
    client = emulator.sdk()
    body: dict[str, Any] = {"manifest_file": MANIFEST, "environment_config": ENVIRONMENTS}
    body["build_id"] = registered_build(client)
    body.update(change)
    with pytest.raises(scale_gp_beta.BadRequestError) as refused:
        client.deploy.create(**{k: v for k, v in body.items() if v is not None})
    assert detail in error_detail(refused.value)
    assert emulator.state()["deployments"] == []


@pytest.mark.parametrize(
    ("label", "sanitized"),
    [
        ("PR #482", "pr-482"),
        ("feature/Login__Page", "feature-login-page"),
        ("--Hello--World--", "hello-world"),
        ("ünïcode tëxt", "n-code-t-xt"),
        ("a" * 29 + "-bcd", "a" * 29),  # the cut leaves a trailing '-', which goes
        ("x" * 40, "x" * 30),
    ],
)
def test_preview_label_is_sanitized(emulator: Any, label: str, sanitized: str) -> None:
    client = emulator.sdk()
    deploy = client.deploy.create(
        manifest_file=MANIFEST,
        environment_config=ENVIRONMENTS,
        build_id=registered_build(client),
        preview=True,
        preview_label=label,
    )
    assert deploy.preview_label == sanitized
    assert [d.id for d in client.deploy.list(preview_label=sanitized)] == [deploy.id]


def test_namespace_is_stripped_and_lowercased(emulator: Any) -> None:
    client = emulator.sdk()
    deploy = client.deploy.create(
        manifest_file=MANIFEST,
        environment_config=env_with(namespace="' Team.Echo '"),
        build_id=registered_build(client),
    )
    assert deploy.namespace == "team.echo"
    no_kubernetes = create_deploy(client, deploy.build_id, environment_config=agent_yaml(namespace=None)[1])
    assert no_kubernetes.namespace == "default"


def test_expired_preview_becomes_deleted_by_itself(emulator: Any) -> None:
    client = emulator.sdk()
    soon = (datetime.now(timezone.utc) + timedelta(seconds=1.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    deploy = client.deploy.create(
        manifest_file=MANIFEST,
        environment_config=ENVIRONMENTS,
        build_id=registered_build(client),
        preview=True,
        preview_label="pr-9",
        expires_at=soon,
    )
    assert deploy.expires_at == datetime.fromisoformat(soon.replace("Z", "+00:00"))
    wait_status(client, deploy.id, "DELETED")
    with pytest.raises(scale_gp_beta.BadRequestError):
        client.deploy.delete(deploy.id)


@pytest.mark.parametrize("emulator", ["current", "legacy"], indirect=True)
def test_list_filters_and_pages(emulator: Any) -> None:
    client = emulator.sdk()
    echo_build, other_build = registered_build(client), registered_build(client, "other-bot")
    other_manifest, other_env = agent_yaml("other-bot")
    made = []
    for label in ("pr-1", "pr-2", "pr-1"):
        made.append(
            client.deploy.create(
                manifest_file=MANIFEST,
                environment_config=ENVIRONMENTS,
                build_id=echo_build,
                preview=True,
                preview_label=label,
            ).id
        )
    made.append(
        client.deploy.create(manifest_file=other_manifest, environment_config=other_env, build_id=other_build).id
    )
    assert [d.id for d in client.deploy.list(limit=2)] == made  # the SDK follows starting_after across pages
    page = client.deploy.list(limit=3)
    assert page.has_more is True and len(page.items) == 3
    assert [d.id for d in client.deploy.list(preview_label="pr-1")] == [made[0], made[2]]
    latest = client.deploy.list(preview_label="pr-1", limit=1, sort_by="created_at", sort_order="desc")
    assert [d.id for d in latest.items] == [made[2]]
    assert [d.id for d in client.deploy.list(build_id=other_build)] == [made[3]]
    assert [d.id for d in client.deploy.list(agent_name="echo-bot")] == made[:3]
    raw = requests.get(f"{emulator.url}/v5/agentex/deployments", headers=emulator.headers).json()
    assert raw["object"] == "list" and raw["total"] == 4 and raw["has_more"] is False and raw["limit"] == 100


def test_healthy_deploy_removes_the_agent_from_undeployed(emulator: Any) -> None:
    client = emulator.sdk()
    deploy = client.deploy.create(
        manifest_file=MANIFEST, environment_config=ENVIRONMENTS, build_id=registered_build(client)
    )
    registered_build(client, "other-bot")
    assert {e.agent_name for e in client.build.list_undeployed()} == {"echo-bot", "other-bot"}
    wait_status(client, deploy.id, "HEALTHY")
    assert {e.agent_name for e in client.build.list_undeployed()} == {"other-bot"}


def test_unknown_deployment_is_404(emulator: Any) -> None:
    client = emulator.sdk()
    for call in (client.deploy.retrieve, client.deploy.delete, client.deploy.logs):
        with pytest.raises(scale_gp_beta.NotFoundError):
            call("deploy_unknown")
