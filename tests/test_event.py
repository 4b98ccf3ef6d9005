"""sgp_action.ci.event: GitHub and Gitea payloads read into an WorkflowEvent, and the `auto` command mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sgp_action.ci.event import WorkflowEvent, load_event, resolve_command
from sgp_action.errors import InputError

HEAD = "a" * 40
BASE = "b" * 40
REPO = {"full_name": "owner/repo", "name": "repo", "owner": {"login": "owner"}, "default_branch": "main"}


def pr_payload(
    action: str = "opened", *, head_repo: Any = None, merged: bool = False, number: int = 42
) -> dict[str, Any]:
    head_repo = {**REPO, "fork": False} if head_repo is None else head_repo
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "merged": merged,
            "head": {"ref": "feature", "sha": HEAD, "repo": head_repo},
            "base": {"ref": "main", "sha": BASE, "repo": REPO},
        },
        "repository": REPO,
    }


def push_payload(ref: str, after: str = HEAD, *, default_branch: str | None = "main") -> dict[str, Any]:
    repo = dict(REPO)
    if default_branch is None:
        repo.pop("default_branch")
    else:
        repo["default_branch"] = default_branch
    return {"ref": ref, "before": BASE, "after": after, "repository": repo}


def load_with(tmp_path: Path, name: str, payload: Any, **env: str) -> WorkflowEvent:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    base = {
        "GITHUB_EVENT_NAME": name,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_SHA": "c" * 40,
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_RUN_ID": "9001",
        "GITHUB_RUN_NUMBER": "7",
    }
    return load_event({**base, **env})


def test_github_pull_request_opened(tmp_path: Path) -> None:
    event = load_with(tmp_path, "pull_request", pr_payload(), GITHUB_REF="refs/pull/42/merge")
    assert event.event_name == "pull_request" and event.action == "opened"
    assert event.pr_number == 42
    assert event.head_sha == HEAD  # never GITHUB_SHA (a merge commit on GitHub)
    assert event.sha == "c" * 40
    assert (event.head_ref, event.base_ref, event.base_sha) == ("feature", "main", BASE)
    assert event.ref == "refs/pull/42/merge"
    assert (event.default_branch, event.repository, event.is_fork, event.merged) == ("main", "owner/repo", False, False)
    assert (event.forge, event.server_url, event.api_url) == ("github", "https://github.com", "https://api.github.com")
    assert event.run_url == "https://github.com/owner/repo/actions/runs/9001"
    assert event.is_pull_request and not event.is_tag
    assert resolve_command("auto", event) == "preview"


def test_github_fork_pull_request(tmp_path: Path) -> None:
    fork = {"full_name": "stranger/repo", "fork": True}
    assert load_with(tmp_path, "pull_request", pr_payload(head_repo=fork)).is_fork
    assert load_with(tmp_path, "pull_request_target", pr_payload(head_repo=fork)).is_fork


def test_pull_request_inside_a_repository_that_is_itself_a_fork_is_not_a_fork_pr(tmp_path: Path) -> None:
    same = {**REPO, "fork": True}  # the repository is a fork of an upstream, the PR is internal
    assert not load_with(tmp_path, "pull_request", pr_payload(head_repo=same)).is_fork


def test_deleted_head_repository_counts_as_a_fork(tmp_path: Path) -> None:
    payload = pr_payload()
    payload["pull_request"]["head"]["repo"] = None
    assert load_with(tmp_path, "pull_request", payload).is_fork


def test_fork_flag_alone_when_names_are_missing(tmp_path: Path) -> None:
    payload = pr_payload(head_repo={"fork": True})
    payload.pop("repository")
    payload["pull_request"]["base"].pop("repo")
    assert load_with(tmp_path, "pull_request", payload, GITHUB_REPOSITORY="").is_fork


def test_pull_request_closed_and_merged(tmp_path: Path) -> None:
    event = load_with(tmp_path, "pull_request", pr_payload("closed", merged=True))
    assert event.merged and resolve_command("auto", event) == "teardown"


def test_gitea_pull_request(tmp_path: Path) -> None:
    # Gitea: no `fork` field, `synchronized` for new commits, refs/pull/N/head, /api/v1, run links by number.
    payload = pr_payload("synchronized", head_repo={"full_name": "owner/repo"})
    event = load_with(
        tmp_path,
        "pull_request",
        payload,
        GITEA_ACTIONS="true",
        GITHUB_SERVER_URL="https://gitea.example/",
        GITHUB_API_URL="https://gitea.example/api/v1",
        GITHUB_REF="refs/pull/42/head",
    )
    assert (event.forge, event.is_fork, event.pr_number, event.head_sha) == ("gitea", False, 42, HEAD)
    assert event.api_url == "https://gitea.example/api/v1"
    assert event.run_url == "https://gitea.example/owner/repo/actions/runs/7"
    assert resolve_command("auto", event) == "preview"
    fork = load_with(tmp_path, "pull_request", pr_payload(head_repo={"full_name": "Other/Repo"}), GITEA_ACTIONS="true")
    assert fork.is_fork


def test_forgejo_is_detected(tmp_path: Path) -> None:
    event = load_with(tmp_path, "push", push_payload("refs/heads/main"), GITEA_ACTIONS="true", FORGEJO_ACTIONS="true")
    assert event.forge == "forgejo"


@pytest.mark.parametrize(
    ("ref", "default_branch", "command"),
    [
        ("refs/heads/main", "main", "deploy"),
        ("refs/heads/feature/x", "main", "build"),
        ("refs/heads/trunk", "trunk", "deploy"),
        ("refs/heads/main", "trunk", "build"),
        ("refs/heads/main", None, "deploy"),  # payload without default_branch: main or master
        ("refs/heads/master", None, "deploy"),
        ("refs/heads/develop", None, "build"),
        ("refs/tags/v1.0.0", "main", "build"),
    ],
)
def test_push(tmp_path: Path, ref: str, default_branch: str | None, command: str) -> None:
    event = load_with(tmp_path, "push", push_payload(ref, default_branch=default_branch), GITHUB_REF="refs/heads/x")
    assert event.ref == ref  # the payload's ref is what was pushed
    assert event.head_sha == HEAD and event.base_sha == BASE
    assert event.pr_number is None and not event.is_fork
    assert resolve_command("auto", event) == command


def test_push_without_after_uses_github_sha(tmp_path: Path) -> None:
    event = load_with(tmp_path, "push", {"ref": "refs/heads/main", "before": "0" * 40})
    assert event.head_sha == "c" * 40 and event.base_sha == ""


@pytest.mark.parametrize(("name", "command"), [("schedule", "cleanup"), ("workflow_dispatch", "deploy")])
def test_schedule_and_dispatch(tmp_path: Path, name: str, command: str) -> None:
    payload: dict[str, Any] = {"repository": REPO} if name == "schedule" else {"inputs": {}, "ref": "refs/heads/main"}
    event = load_with(tmp_path, name, payload, GITHUB_REF="refs/heads/main")
    assert event.head_sha == "c" * 40 and event.pr_number is None
    assert resolve_command("auto", event) == command


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "ready_for_review", "labeled"])
def test_preview_actions(action: str) -> None:
    assert resolve_command("auto", WorkflowEvent(event_name="pull_request", action=action)) == "preview"


@pytest.mark.parametrize("action", ["edited", "assigned", "converted_to_draft", ""])
def test_unmapped_pull_request_actions_ask_for_command(action: str) -> None:
    with pytest.raises(InputError, match="set command"):
        resolve_command("auto", WorkflowEvent(event_name="pull_request", action=action))


@pytest.mark.parametrize("name", ["issues", "release", ""])
def test_unmapped_events_ask_for_command(name: str) -> None:
    with pytest.raises(InputError, match="set command"):
        resolve_command("auto", WorkflowEvent(event_name=name))


def test_explicit_command_is_kept() -> None:
    assert resolve_command("teardown", WorkflowEvent(event_name="push", ref="refs/heads/main")) == "teardown"


def test_no_event_in_plain_cli_use() -> None:
    event = load_event({})
    assert event == WorkflowEvent(server_url="https://github.com", api_url="https://api.github.com")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        (b"\xff\xfe\x00", "cannot be read"),
    ],
)
def test_bad_event_files(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "event.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        load_event({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path)})
    assert info.value.exit_code == 2


def test_event_name_without_payload_path_is_an_error() -> None:
    with pytest.raises(InputError, match="GITHUB_EVENT_PATH is not set"):
        load_event({"GITHUB_EVENT_NAME": "pull_request"})


def test_payload_with_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(pr_payload()).encode())
    assert load_event({"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path)}).pr_number == 42
