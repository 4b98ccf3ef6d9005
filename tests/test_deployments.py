"""GitHub deployments: whole runs against the emulator and a local forge API that records every call."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sgp_action.ci import deployments as deployments_module
from sgp_action.ci.deployments import DeploymentRequest, GitHubDeployments, render_url, validate_url_template
from sgp_action.demo import PR_NUMBER, pull_request_event
from tests.fake_forge import REPO, FakeForge, serve_forge
from tests.run_helpers import ForgeWorkspace, Run
from tests.support import EmulatorHandle

TOKEN = "ghs_tokenvalue"
URL = "https://{label}.preview.example.com/{agent}?d={deployment_id}"


class KindWorkspace(ForgeWorkspace):
    """A ForgeWorkspace on a chosen forge (GITEA_ACTIONS / FORGEJO_ACTIONS set for those)."""

    extra: dict[str, str] = {}  # noqa: RUF012 - set per instance before a run

    def environ(self, event_name: str, payload: dict[str, Any], **inputs: str) -> dict[str, str]:
        env = super().environ(event_name, payload, **inputs)
        env.update({"GITHUB_SERVER_URL": "https://github.example", "GITHUB_RUN_ID": "42", **self.extra})
        return env


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with serve_forge() as state:
        yield state


@pytest.fixture
def workspace(tmp_path: Path, emulator: EmulatorHandle, forge: FakeForge) -> KindWorkspace:
    space = KindWorkspace(tmp_path, emulator)
    space.api_url = forge.url
    return space


def _preview(workspace: KindWorkspace, **inputs: str) -> Run:
    return workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token=TOKEN, **inputs)


def _closed(workspace: KindWorkspace) -> dict[str, Any]:
    payload: dict[str, Any] = pull_request_event(workspace.head_sha)
    payload["action"] = "closed"
    payload["pull_request"] = {**payload["pull_request"], "state": "closed"}
    return payload


RUN_URL = f"https://github.example/{REPO}/actions/runs/42"


def test_a_preview_is_a_transient_deployment_in_progress_then_success(
    workspace: KindWorkspace, forge: FakeForge
) -> None:
    run = _preview(workspace, deployment_url=URL)
    assert (run.exit_code, run.result) == (0, "success"), run.log
    ((deployment_id, created),) = forge.deployments.items()
    assert created["environment"] == f"sgp-preview/pr-{PR_NUMBER}" and created["ref"] == workspace.head_sha
    assert created["transient_environment"] is True and created["production_environment"] is False
    assert created["required_contexts"] == [] and created["payload"] == {"agent": "sample-agent"}
    assert forge.states(deployment_id) == ["in_progress", "success"]
    in_progress, success = (s for s in forge.deployment_statuses if s["deployment"] == deployment_id)
    assert in_progress["log_url"] == success["log_url"] == RUN_URL
    sgp_id = run.outputs["deployment-id"]
    assert success["environment_url"] == f"https://pr-{PR_NUMBER}.preview.example.com/sample-agent?d={sgp_id}"
    assert sgp_id in success["description"] and "healthy" in success["description"]
    (body,) = [c["body"] for c in forge.comments.values()]
    assert f"[Open the deployment](https://pr-{PR_NUMBER}.preview.example.com/sample-agent?d={sgp_id})" in body
    assert "environment_url" not in in_progress and TOKEN not in str(forge.deployment_statuses)


def test_a_failed_preview_ends_its_deployment_in_failure_without_a_url(
    workspace: KindWorkspace, forge: FakeForge
) -> None:
    workspace.set_dockerfile("FROM python:3.12-slim\nRUN exit 3\n")
    run = _preview(workspace, deployment_url=URL)
    assert (run.exit_code, run.result) == (1, "failure"), run.log
    ((deployment_id, _),) = forge.deployments.items()
    assert forge.states(deployment_id) == ["in_progress", "failure"]
    final = forge.deployment_statuses[-1]
    assert final["description"].startswith("failure: build ") and "environment_url" not in final
    assert len(final["description"]) <= 140


def test_production_is_a_production_deployment_that_retires_the_previous_one(
    workspace: KindWorkspace, forge: FakeForge
) -> None:
    run = workspace.run("push", workspace.push("main"), github_token=TOKEN)
    assert (run.exit_code, run.result) == (0, "success"), run.log
    ((deployment_id, created),) = forge.deployments.items()
    assert created["production_environment"] is True and created["transient_environment"] is False
    assert created["environment"] == "dev" and created["ref"] == workspace.head_sha
    assert forge.states(deployment_id) == ["in_progress", "success"]
    assert forge.deployment_statuses[-1]["auto_inactive"] is True


def test_teardown_sets_the_previews_deployments_inactive(workspace: KindWorkspace, forge: FakeForge) -> None:
    assert _preview(workspace).result == "success"
    forge.deployments[999] = {"environment": f"sgp-preview/pr-{PR_NUMBER}", "payload": {"agent": "another-agent"}}
    run = workspace.run("pull_request", _closed(workspace), github_token=TOKEN)
    assert (run.exit_code, run.result) == (0, "success"), run.log
    (ours,) = [i for i, d in forge.deployments.items() if d["payload"] == {"agent": "sample-agent"}]
    assert forge.states(ours) == ["in_progress", "success", "inactive"]
    assert forge.states(999) == []  # another agent's preview in the same PR is left alone
    assert forge.deployment_statuses[-1]["log_url"] == RUN_URL


def test_a_token_without_deployments_write_gives_one_warning_and_the_run_goes_on(
    workspace: KindWorkspace, forge: FakeForge
) -> None:
    forge.deployments_forbidden = True
    run = _preview(workspace)
    assert (run.exit_code, run.result) == (0, "success"), run.log
    warnings = [line for line in run.log.splitlines() if line.startswith("::warning title=GitHub deployment::")]
    assert len(warnings) == 1 and "deployments: write" in warnings[0], run.log
    assert forge.deployment_calls() == [("POST", f"/api/v1/repos/{REPO}/deployments")]  # nothing after the 403
    assert len(forge.comments) == 1  # the comment is still posted


@pytest.mark.parametrize("kind", ["GITEA_ACTIONS", "FORGEJO_ACTIONS"])
def test_gitea_and_forgejo_make_no_deployments_call(workspace: KindWorkspace, forge: FakeForge, kind: str) -> None:
    workspace.extra = {kind: "true"}
    assert _preview(workspace).result == "success"
    assert workspace.run("pull_request", _closed(workspace), github_token=TOKEN).result == "success"
    assert forge.deployment_calls() == []
    assert len(forge.comments) == 1 and forge.statuses  # the comment and the commit status instead


def test_a_dry_run_makes_no_deployment(workspace: KindWorkspace, forge: FakeForge) -> None:
    assert _preview(workspace, dry_run="true").result == "success"
    assert forge.deployment_calls() == []


def test_a_stuck_forge_costs_the_build_nothing_and_the_end_at_most_the_budget(
    forge: FakeForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deployments_module, "FORGE_GRACE", 0.1)
    warnings: list[str] = []
    github = GitHubDeployments(forge.url, REPO, TOKEN, warn=warnings.append, budget=0.5)
    forge.drip = "headers"  # the listing of the environment's deployments never gets its answer
    start = time.monotonic()
    github.deactivate([("pr-1", None)], "")
    assert time.monotonic() - start < 1.5
    assert len(warnings) == 1 and "GitHub deployment" in warnings[0]
    assert github.deactivate([("pr-2", None)], "") == 0 and len(warnings) == 1  # given up: no second warning


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("https://{labl}.example.com", "unknown placeholder {labl}"),
        ("https://{label!r}.example.com", "takes no format"),
        ("https://{label.__class__}.example.com", "unknown placeholder"),
        ("https://{label", "placeholders"),
        ("ftp://{label}.example.com", "not an http(s) URL"),
        ("{label}", "not an http(s) URL"),
    ],
)
def test_bad_url_templates_are_refused_saying_what_to_fix(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
        validate_url_template(template)


def test_url_values_are_percent_encoded() -> None:
    template = validate_url_template("https://example.com/{agent}/{label}")
    assert render_url(template, {"agent": "a/../b", "label": "x?y#z"}) == "https://example.com/a%2F..%2Fb/x%3Fy%23z"
    assert validate_url_template("") == "" and render_url("", {"label": "x"}) == ""


def test_cleanup_sets_the_deployments_of_the_previews_it_deletes_inactive(
    workspace: KindWorkspace, forge: FakeForge
) -> None:
    assert _preview(workspace).result == "success"
    forge.pulls[PR_NUMBER] = "closed"
    run = workspace.run("schedule", {}, github_token=TOKEN, command="cleanup")
    assert (run.exit_code, run.result) == (0, "success"), run.log
    ((deployment_id, _),) = forge.deployments.items()
    assert forge.states(deployment_id) == ["in_progress", "success", "inactive"]


# --- a cancelled run's final status: everything ends by the deadline it is given ---


def _started(forge: FakeForge, warnings: list[str], *, wait_for_id: bool = True) -> GitHubDeployments:
    github = GitHubDeployments(forge.url, REPO, TOKEN, warn=warnings.append, budget=2.0)
    github.start(DeploymentRequest("a" * 40, "sgp-preview/pr-1", False, "sample-agent", "", "Building"))
    give_up = time.monotonic() + 5
    while wait_for_id and not github.deployment_id and time.monotonic() < give_up:
        forge.stop.wait(0.01)  # the start runs in a thread of its own: wait until it has its id
    return github


def test_a_final_status_with_a_deadline_ends_by_it_when_the_forge_is_silent(forge: FakeForge) -> None:
    warnings: list[str] = []
    forge.hang_state = "error"
    github = _started(forge, warnings, wait_for_id=False)  # finish waits for the start itself
    start = time.monotonic()
    assert github.finish("error", "cancelled: the job was cancelled", deadline=start + 1.0) is False
    elapsed = time.monotonic() - start
    assert elapsed < 1.25, elapsed
    assert forge.states(github.deployment_id) == ["in_progress", "error"]  # sent, never answered
    assert len(warnings) == 1 and "GitHub deployment" in warnings[0], warnings


def test_a_start_still_in_flight_is_waited_for_only_until_the_deadline(forge: FakeForge) -> None:
    warnings: list[str] = []
    forge.hang_state = "in_progress"  # the start's own status call never gets its answer
    github = _started(forge, warnings, wait_for_id=False)
    start = time.monotonic()
    assert github.finish("error", "cancelled", deadline=start + 0.5) is False
    assert time.monotonic() - start < 0.75
    assert warnings == [] and [s["state"] for s in forge.deployment_statuses] == ["in_progress"]


def test_too_little_time_left_sends_nothing_and_warns_nothing(forge: FakeForge) -> None:
    warnings: list[str] = []
    github = _started(forge, warnings)
    assert github.deployment_id
    assert github.finish("error", "cancelled", deadline=time.monotonic() + 0.1) is False
    assert forge.states(github.deployment_id) == ["in_progress"] and warnings == []
