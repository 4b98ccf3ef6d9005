"""The emulator's server variants (`--variant NAME`, `POST /_emulator/variants`): each answers as its docs say."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import pytest
import requests

from sgp_action.emulator.cli import build_parser, config_from_args
from sgp_action.emulator.variants import VARIANT_NAMES
from tests.support import agent_yaml

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DOCKERFILE = "FROM alpine\nRUN echo one\nRUN echo two\nRUN echo three\n"


def call(emulator: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{emulator.url}{path}", headers=emulator.headers, timeout=10, **kwargs)


def registered_build(emulator: Any, agent: str = "echo-bot") -> dict[str, Any]:
    """A build of an existing image: successful at once, so deployments can start without waiting."""
    form = {"image_name": agent, "agent_name": agent, "image_url": f"registry.example/{agent}:1"}
    response = call(emulator, "POST", "/v5/builds", files={k: (None, v) for k, v in form.items()})
    assert response.status_code == 200, response.text
    return dict(response.json())


def deploy(emulator: Any, build_id: str, agent: str = "echo-bot", **extra: Any) -> dict[str, Any]:
    manifest, environments = agent_yaml(agent)
    body = {"manifest_file": manifest, "environment_config": environments, "build_id": build_id, **extra}
    response = call(emulator, "POST", "/v5/agentex/deployments", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(emulator: Any, deploy_id: str, word: str) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = call(emulator, "GET", f"/v5/agentex/deployments/{deploy_id}").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == word:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"never reached {word}; saw {seen}")


def sse_events(emulator: Any, build_id: str, last_event_id: str | None = None) -> list[tuple[str | None, str]]:
    headers = dict(emulator.headers, Accept="text/event-stream")
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    text = requests.get(f"{emulator.url}/v5/builds/{build_id}/logs", headers=headers, timeout=10).text
    events: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("id"), json.loads(fields["data"])["line"]))
    return events


def archive_build(emulator: Any, make_context: Any) -> str:
    with make_context({"Dockerfile": DOCKERFILE}).open("rb") as handle:
        files = {"context_archive": ("context.tar.gz", handle), "image_name": (None, "echo"), "agent_name": (None, "a")}
        response = call(emulator, "POST", "/v5/builds", files=files)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def test_status_words_use_the_sdk_docstring_words_in_mixed_case(emulator_factory: Any) -> None:
    emulator = emulator_factory(variants=["status-words"])
    dep = deploy(emulator, registered_build(emulator)["id"])
    assert dep["status"] == "pending"
    seen = wait_status(emulator, dep["id"], "Completed")
    assert set(seen) <= {"pending", "Running", "Completed"}
    assert call(emulator, "DELETE", f"/v5/agentex/deployments/{dep['id']}").json()["status"] == "Deleted"
    again = call(emulator, "DELETE", f"/v5/agentex/deployments/{dep['id']}")
    assert again.status_code == 400 and "already Deleted" in again.json()["detail"]


def test_no_sort_refuses_sort_parameters_naming_them(emulator_factory: Any) -> None:
    emulator = emulator_factory(variants=["no-sort"])
    for path in ("/v5/builds", "/v5/agentex/deployments"):
        for name, value in (("sort_by", "created_at"), ("sort_order", "desc")):
            response = call(emulator, "GET", path, params={name: value})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", name]
    ids = [registered_build(emulator, f"agent-{n}")["id"] for n in range(4)]
    listed = [b["id"] for b in call(emulator, "GET", "/v5/builds").json()["items"]]
    assert listed == sorted(ids)


def test_no_has_more_pages_by_next_cursor_only(emulator_factory: Any) -> None:
    emulator = emulator_factory(variants=["no-has-more"])
    ids = [registered_build(emulator, f"agent-{n}")["id"] for n in range(3)]
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
        page = call(emulator, "GET", "/v5/builds", params=params).json()
        assert "has_more" not in page
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if len(page["items"]) < 2:
            break
    assert seen == ids and cursor == ids[-1]  # a short page ends the list, its cursor still set
    dep = deploy(emulator, ids[0], agent="agent-0")
    page = call(emulator, "GET", "/v5/agentex/deployments").json()
    assert page["has_more"] is None and page["next_cursor"] == dep["id"]


@pytest.mark.parametrize("code", [404, 409])
def test_delete_ended_answers_the_variants_code(emulator_factory: Any, code: int) -> None:
    emulator = emulator_factory(variants=[f"delete-ended-{code}"])
    dep = deploy(emulator, registered_build(emulator)["id"])
    assert call(emulator, "DELETE", f"/v5/agentex/deployments/{dep['id']}").status_code == 200
    assert call(emulator, "DELETE", f"/v5/agentex/deployments/{dep['id']}").status_code == code
    assert call(emulator, "GET", f"/v5/agentex/deployments/{dep['id']}").json()["status"] == "DELETED"


def test_sse_resume_continues_after_last_event_id(emulator_factory: Any, make_context: Any) -> None:
    emulator = emulator_factory(variants=["sse-resume"], faults=["sse-drop-after=2"])
    build_id = archive_build(emulator, make_context)
    first = sse_events(emulator, build_id)
    assert [i for i, _ in first] == ["1", "2"]
    second = sse_events(emulator, build_id, last_event_id="2")
    assert [i for i, _ in second] == ["3", "4"]
    replay = sse_events(emulator, build_id)  # no Last-Event-ID: from the first line, as without the variant
    assert [i for i, _ in replay] == ["1", "2", "3", "4", "5", "6"]
    emulator.set_faults([])
    full = sse_events(emulator, build_id, last_event_id="6")
    assert [i for i, _ in first + replay[2:] + full] == [str(n) for n in range(1, len(full) + 7)]


def test_sse_tail_starts_a_reconnect_after_what_was_sent(emulator_factory: Any, make_context: Any) -> None:
    emulator = emulator_factory(variants=["sse-tail"], faults=["sse-drop-after=2"])
    build_id = archive_build(emulator, make_context)
    first = sse_events(emulator, build_id)
    second = sse_events(emulator, build_id, last_event_id="1")  # the header is ignored
    emulator.set_faults([])
    rest = sse_events(emulator, build_id)
    lines = first + second + rest
    assert [i for i, _ in first] == ["1", "2"] and [i for i, _ in second] == ["3", "4"]
    assert [i for i, _ in lines] == [str(n) for n in range(1, len(lines) + 1)]
    assert "digest: sha256:" in lines[-1][1]  # the last push line: the whole log, each line once


def test_foreign_agent_is_found_through_its_deployment(emulator_factory: Any) -> None:
    emulator = emulator_factory(variants=["foreign-agent"])
    assert call(emulator, "GET", "/v5/builds", params={"agent_name": "ui-bot"}).json()["items"] == []
    form = {"image_name": "ui-bot", "agent_name": "ui-bot", "image_url": "registry.example/ui-bot:1"}
    conflict = call(emulator, "POST", "/v5/builds", files={k: (None, v) for k, v in form.items()})
    assert conflict.status_code == 409 and not UUID.search(conflict.text)
    deployments = call(emulator, "GET", "/v5/agentex/deployments", params={"agent_name": "ui-bot"}).json()["items"]
    assert [d["status"] for d in deployments] == ["HEALTHY"]
    agent_id = call(emulator, "GET", f"/v5/builds/{deployments[0]['build_id']}").json()["agent_id"]
    form = {"image_name": "ui-bot", "agent_id": agent_id, "image_url": "registry.example/ui-bot:2"}
    built = call(emulator, "POST", "/v5/builds", files={k: (None, v) for k, v in form.items()})
    assert built.status_code == 200 and built.json()["agent_name"] == "ui-bot"


def test_epoch_times_send_numbers_and_offsets(emulator_factory: Any) -> None:
    emulator = emulator_factory(variants=["epoch-times"])
    build = registered_build(emulator)
    assert isinstance(build["created_at"], float) and abs(build["created_at"] - time.time()) < 60
    assert build["build_end_time"].endswith("+0000")
    dep = deploy(emulator, build["id"], preview=True, preview_label="pr-1")
    assert isinstance(dep["created_at"], float)
    assert dep["expires_at"].endswith("+0000")
    datetime.strptime(dep["expires_at"], "%Y-%m-%dT%H:%M:%S.%f%z")
    wait_status(emulator, dep["id"], "HEALTHY")
    events = call(emulator, "GET", f"/v5/agentex/deployments/{dep['id']}").json()["deploy_events"]
    assert events and all(e["timestamp"].endswith("+0000") for e in events)


def test_variants_change_at_run_time(emulator: Any) -> None:
    url = f"{emulator.url}/_emulator/variants"
    assert requests.get(url, timeout=10).json() == {"variants": []}
    assert call(emulator, "GET", "/v5/builds", params={"sort_by": "created_at"}).status_code == 200
    assert requests.post(url, json=["no-sort", "epoch-times"], timeout=10).json()["variants"] == [
        "epoch-times",
        "no-sort",
    ]
    assert call(emulator, "GET", "/v5/builds", params={"sort_by": "created_at"}).status_code == 422
    bad = requests.post(url, json=["no-such"], timeout=10)
    assert bad.status_code == 400 and "no-sort" in bad.json()["detail"]
    both = requests.post(url, json=["delete-ended-404", "delete-ended-409"], timeout=10)
    assert both.status_code == 400 and "choose one" in both.json()["detail"]
    assert requests.post(url, json=[], timeout=10).json() == {"variants": []}
    assert call(emulator, "GET", "/v5/builds", params={"sort_by": "created_at"}).status_code == 200


def test_help_lists_every_variant_and_flags_parse() -> None:
    parser = build_parser()
    text = " ".join(parser.format_help().split())
    assert all(name in text for name in VARIANT_NAMES)
    args = parser.parse_args(["--variant", "no-sort", "--variant", "sse-tail"])
    assert config_from_args(args).variants == ["no-sort", "sse-tail"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--variant", "nope"])


def test_all_variants_together_serve_a_deploy(emulator_factory: Any) -> None:
    names = [n for n in VARIANT_NAMES if n not in ("delete-ended-409", "sse-tail")]
    emulator = emulator_factory(variants=names)
    found = call(emulator, "GET", "/v5/agentex/deployments", params={"agent_name": "echo-bot"}).json()
    agent_id = call(emulator, "GET", f"/v5/builds/{found['items'][0]['build_id']}").json()["agent_id"]
    form = {"image_name": "echo-bot", "agent_id": agent_id, "image_url": "registry.example/echo-bot:2"}
    build = call(emulator, "POST", "/v5/builds", files={k: (None, v) for k, v in form.items()}).json()
    dep = deploy(emulator, build["id"])
    wait_status(emulator, dep["id"], "Completed")
    assert call(emulator, "GET", f"/v5/agentex/deployments/{found['items'][0]['id']}").json()["status"] == "Superseded"
    assert call(emulator, "DELETE", f"/v5/agentex/deployments/{dep['id']}").status_code == 200
    assert call(emulator, "DELETE", f"/v5/agentex/deployments/{dep['id']}").status_code == 404
