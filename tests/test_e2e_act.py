"""End to end in a real Actions runner: nektos/act (host mode) runs action.yml against the emulator.

Every session starts the emulator as a real subprocess and runs act inside one loopback-only network namespace when
that is possible here (see `act_harness`). Each consumer workflow ends with a step that writes
`toJSON(steps.sgp.outputs)` to a results file, so the action's outputs are checked as a later step saw them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sgp_action.demo import run_git
from tests.act_harness import (
    ACCOUNT_ID,
    API_KEY,
    ROOT,
    ActHarness,
    ActResult,
    ActRun,
    Session,
    assert_secret_never_shown,
    copy_project,
    make_consumer_repo,
    output_of,
    pr_payload,
    push_payload,
    seed_tool_cache,
)

# Each test drives the action in a real runner (act); tests/conftest.py keeps the module on one xdist worker.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def act_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(clean copy of the project, seeded tool cache), shared by the module's sessions."""
    base = tmp_path_factory.mktemp("act-env")
    project = copy_project(base / "sgp-action")
    yield project, seed_tool_cache(base / "tool-cache", project)


@pytest.fixture
def harness(tmp_path: Path, act_env: tuple[Path, Path]) -> ActHarness:
    """A harness writing its sessions under this test's tmp_path."""
    work = tmp_path / "runs"
    work.mkdir()
    return ActHarness(work, *act_env)


PROBE_WORKFLOW = """\
name: probe
on: [pull_request]
jobs:
  probe:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: probe
        shell: bash
        env:
          KEY: ${{ vars.SGP_API_KEY }}
          BASE: ${{ vars.SGP_BASE_URL }}
        run: |
          echo "::add-mask::$KEY"
          echo "key=$KEY"
          test -f sample-agent/manifest.yaml
          echo "forge=$GITHUB_SERVER_URL api=$GITHUB_API_URL repo=$GITHUB_REPOSITORY"
          code=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)' \\
            "$BASE/_emulator/state")
          echo "state-status=$code" >>"$GITHUB_OUTPUT"
          echo "base=$BASE" >>"$GITHUB_OUTPUT"
          echo "pr=${{ github.event.pull_request.number }}" >>"$GITHUB_OUTPUT"
      - if: always()
        shell: bash
        env:
          OUTS: ${{ toJSON(steps.probe.outputs) }}
        run: printf '%s' "$OUTS" >"$RESULT_PATH"
"""


def test_harness_runs_a_job_on_loopback_against_the_emulator(harness: ActHarness, tmp_path: Path) -> None:
    """The harness itself: the job runs in act, sees the consumer checkout, reaches the emulator on 127.0.0.1."""
    repo, sha = make_consumer_repo(tmp_path / "consumer", {"probe.yml": PROBE_WORKFLOW})
    session = harness.run(
        repo, [ActRun("probe", "pull_request", pr_payload(5, sha), workflow=".github/workflows/probe.yml")]
    )
    result = session["probe"]
    assert result.returncode == 0, result.log()
    assert result.job_results == ["success"]
    assert result.outputs is not None
    assert result.outputs["state-status"] == "200"
    assert result.outputs["pr"] == "5"
    assert result.outputs["base"].startswith("http://127.0.0.1:")
    assert f"api={result.outputs['base']}/api/v3" in result.log()
    assert "repo=owner/consumer" in result.log()
    assert "key=***" in result.log()
    assert_secret_never_shown(result, API_KEY)
    assert session.state["builds"] == [] and session.state["deployments"] == []
    assert session.used_netns == harness.netns


# --- the action itself ----------------------------------------------------------------------------------------------

E2E_WORKFLOW = """\
name: e2e
on: [pull_request, push, workflow_dispatch, schedule]
jobs:
  e2e:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: sgp
        uses: owner/sgp-action@v1
        with:
          # Deliberately NOT secrets: act masks secrets by itself, the action must mask the key on its own.
          api-key: ${{ vars.SGP_API_KEY }}
          account-id: ${{ vars.SGP_ACCOUNT_ID }}
          base-url: ${{ vars.SGP_BASE_URL }}
          manifest: sample-agent/manifest.yaml
          preview-ttl: ${{ vars.PREVIEW_TTL || '8h' }}
          poll-interval: 1s
      - if: always()
        shell: bash
        env:
          OUTS: ${{ toJSON(steps.sgp.outputs) }}
        run: printf '%s' "$OUTS" >"$RESULT_PATH"
"""

E2E_WORKFLOW = E2E_WORKFLOW.replace(
    "          poll-interval: 1s\n",
    "          poll-interval: 1s\n          reuse-build: ${{ vars.REUSE_BUILD || 'true' }}\n",
)
PR = 42
EXAMPLE_PR = 43
GITEA_PR = 50


@dataclass
class MainSession:
    """One emulator, one consumer repository, the whole life of a pull request and two pushes."""

    session: Session
    head_sha: str
    started: datetime
    finished: datetime


@pytest.fixture(scope="module")
def main_session(tmp_path_factory: pytest.TempPathFactory, act_env: tuple[Path, Path]) -> MainSession:
    """PR opened (ttl 2h), PR closed, push to main, push to a branch (no reuse), and the GitHub preview example."""
    base = tmp_path_factory.mktemp("e2e-main")
    example = (ROOT / "examples" / "github" / "preview.yml").read_text(encoding="utf-8")
    rollback = (ROOT / "examples" / "github" / "rollback.yml").read_text(encoding="utf-8")
    workflows = {"e2e.yml": E2E_WORKFLOW, "example-preview.yml": example, "example-rollback.yml": rollback}
    repo, sha = make_consumer_repo(base / "consumer", workflows)
    (base / "runs").mkdir()
    harness = ActHarness(base / "runs", *act_env)
    gitea_payload = pr_payload(GITEA_PR, sha)
    del gitea_payload["pull_request"]["head"]["repo"]["fork"]
    secrets = ["-s", f"SGP_API_KEY={API_KEY}", "-s", f"SGP_ACCOUNT_ID={ACCOUNT_ID}"]
    started = datetime.now(timezone.utc)
    session = harness.run(
        repo,
        [
            ActRun("pr_opened", "pull_request", pr_payload(PR, sha), extra=["--var", "PREVIEW_TTL=2h"]),
            ActRun("pr_closed", "pull_request", pr_payload(PR, sha, action="closed")),
            ActRun("push_main", "push", push_payload("main", sha)),
            ActRun(
                "example_preview",
                "pull_request",
                pr_payload(EXAMPLE_PR, sha),
                workflow=".github/workflows/example-preview.yml",
                extra=[*secrets],
            ),
            # As Gitea's runner would: GITEA_ACTIONS set, no `fork` field in the payload.
            ActRun("gitea_pr", "pull_request", gitea_payload, extra=["--env", "GITEA_ACTIONS=true"]),
            # The rollback example redeploys the pull request's build to production by id.
            ActRun(
                "example_rollback",
                "workflow_dispatch",
                {"repository": push_payload("main", sha)["repository"]},
                workflow=".github/workflows/example-rollback.yml",
                extra=[*secrets],
                dynamic="--input build-id=" + output_of("$SESSION", "pr_opened", "build-id"),
            ),
            # A fork's pull request gets no secrets: the example workflow must end green, skipped.
            ActRun(
                "example_fork",
                "pull_request",
                pr_payload(EXAMPLE_PR + 1, sha, fork=True),
                workflow=".github/workflows/example-preview.yml",
            ),
            # Last, so that no later preview reuses (and so deploys) the build it makes.
            ActRun("push_branch", "push", push_payload("feature-x", sha), extra=["--var", "REUSE_BUILD=false"]),
        ],
    )
    return MainSession(session, sha, started, datetime.now(timezone.utc))


def _succeeded(result: ActResult) -> dict[str, str]:
    assert result.returncode == 0, result.log()
    assert result.job_results == ["success"], result.log()
    assert result.outputs is not None, result.log()
    return result.outputs


def _record(items: list[dict[str, Any]], record_id: str) -> dict[str, Any]:
    """The one build or deployment with this id, in either dialect (`id` or `build_id`)."""
    (found,) = [item for item in items if item.get("id", item.get("build_id")) == record_id]
    return found


def _annotations(result: ActResult) -> list[str]:
    """The `::error::` annotations of a run, as act recorded them."""
    return [str(r.get("msg", "")) for r in result.records if r.get("command") == "error"]


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_pr_opened_gives_a_healthy_preview(main_session: MainSession) -> None:
    outputs = _succeeded(main_session.session["pr_opened"])
    assert outputs["result"] == "success"
    assert outputs["deployment-status"] == "healthy"
    assert outputs["build-status"] == "success"
    assert outputs["preview-label"] == f"pr-{PR}"
    assert outputs["image-tag"] == main_session.head_sha[:7]
    assert outputs["helm-release-name"].startswith(f"sample-agent-pr-{PR}-")
    expires = _parse_time(outputs["expires-at"])
    low = main_session.started + timedelta(hours=2) - timedelta(seconds=5)
    high = main_session.finished + timedelta(hours=2) + timedelta(seconds=5)
    assert low <= expires <= high


def test_pr_build_carries_the_pr_head_sha(main_session: MainSession) -> None:
    outputs = _succeeded(main_session.session["pr_opened"])
    build = _record(main_session.session.state["builds"], outputs["build-id"])
    assert build["source_commit"] == main_session.head_sha
    deployment = _record(main_session.session.state["deployments"], outputs["deployment-id"])
    assert deployment["preview_label"] == f"pr-{PR}"


def test_the_api_key_never_reaches_the_log(main_session: MainSession) -> None:
    for result in main_session.session.results.values():
        assert_secret_never_shown(result, API_KEY)
    assert "***" in main_session.session["pr_opened"].log()


def test_pr_closed_deletes_the_preview(main_session: MainSession) -> None:
    opened = _succeeded(main_session.session["pr_opened"])
    outputs = _succeeded(main_session.session["pr_closed"])
    assert outputs["result"] == "success"
    assert opened["deployment-id"] in json.loads(outputs["deleted"])
    deployment = _record(main_session.session.state["deployments"], opened["deployment-id"])
    assert deployment["status"].lower() == "deleted"


def test_push_to_main_deploys_to_production(main_session: MainSession) -> None:
    outputs = _succeeded(main_session.session["push_main"])
    assert outputs["result"] == "success"
    assert outputs["deployment-status"] == "healthy"
    assert outputs.get("preview-label", "") == ""
    deployment = _record(main_session.session.state["deployments"], outputs["deployment-id"])
    assert not deployment.get("preview")
    # The same working tree was built for the pull request: that successful build is reused.
    assert outputs["reused-build"] == "true"
    assert outputs["build-id"] == main_session.session["pr_opened"].outputs["build-id"]  # type: ignore[index]


def test_push_to_a_branch_only_builds(main_session: MainSession) -> None:
    outputs = _succeeded(main_session.session["push_branch"])
    assert outputs["result"] == "success"
    assert outputs["build-status"] == "success"
    assert outputs["reused-build"] == "false"
    assert outputs.get("deployment-id", "") == ""
    deployed_builds = {d["build_id"] for d in main_session.session.state["deployments"]}
    assert outputs["build-id"] not in deployed_builds


def test_the_github_preview_example_runs_as_written(main_session: MainSession) -> None:
    result = main_session.session["example_preview"]
    assert result.returncode == 0, result.log()
    assert result.job_results == ["success"]
    assert f"preview pr-{EXAMPLE_PR} is healthy" in result.log()
    assert_secret_never_shown(result, API_KEY)


def test_a_failing_dockerfile_fails_the_job_with_an_annotation(harness: ActHarness, tmp_path: Path) -> None:
    dockerfile = 'FROM python:3.12-slim\nRUN echo "about to fail"\nRUN exit 3\nCMD ["true"]\n'
    repo, sha = make_consumer_repo(tmp_path / "consumer", {"e2e.yml": E2E_WORKFLOW}, dockerfile=dockerfile)
    result = harness.run(repo, [ActRun("pr", "pull_request", pr_payload(7, sha))])["pr"]
    assert result.returncode != 0
    assert result.job_results == ["failure"]
    log = result.log()
    assert "about to fail" in log
    assert "returned a non-zero code: 3" in log
    assert any("returned a non-zero code: 3" in message for message in _annotations(result)), log
    assert result.outputs is not None and result.outputs["result"] == "failure"
    assert result.outputs["build-status"] == "failed"


def test_a_crashing_deployment_fails_the_job_with_its_events(harness: ActHarness, tmp_path: Path) -> None:
    repo, sha = make_consumer_repo(tmp_path / "consumer", {"e2e.yml": E2E_WORKFLOW})
    session = harness.run(
        repo, [ActRun("pr", "pull_request", pr_payload(8, sha))], emulator_flags=["--fault", "deploy-fail"]
    )
    result = session["pr"]
    assert result.returncode != 0
    assert result.job_results == ["failure"]
    assert "CrashLoopBackOff" in result.log()
    assert any("failed" in message for message in _annotations(result)), result.log()
    assert result.outputs is not None
    assert result.outputs["result"] == "failure"
    assert result.outputs["deployment-status"] == "failed"


def test_the_legacy_api_dialect_still_gives_a_healthy_preview(harness: ActHarness, tmp_path: Path) -> None:
    repo, sha = make_consumer_repo(tmp_path / "consumer", {"e2e.yml": E2E_WORKFLOW})
    session = harness.run(
        repo, [ActRun("pr", "pull_request", pr_payload(9, sha))], emulator_flags=["--dialect", "legacy"]
    )
    outputs = _succeeded(session["pr"])
    assert outputs["result"] == "success"
    assert outputs["deployment-status"] == "healthy"
    assert outputs["preview-label"] == "pr-9"
    (build,) = session.state["builds"]
    assert build["status"] == "success" and build["source_commit"] == sha


def test_a_fork_pull_request_is_skipped_not_failed(main_session: MainSession) -> None:
    result = main_session.session["example_fork"]
    assert result.returncode == 0, result.log()
    assert result.job_results == ["success"]
    assert "fork" in result.log()
    labels = {d.get("preview_label") for d in main_session.session.state["deployments"]}
    assert f"pr-{EXAMPLE_PR + 1}" not in labels


def test_the_rollback_example_redeploys_a_build_by_id(main_session: MainSession) -> None:
    result = main_session.session["example_rollback"]
    assert result.returncode == 0, result.log()
    assert result.job_results == ["success"]
    build_id = main_session.session["pr_opened"].outputs["build-id"]  # type: ignore[index]
    match = re.search(r"rolled back: deployment (\S+) is healthy", result.log())
    assert match, result.log()
    deployment = _record(main_session.session.state["deployments"], match.group(1))
    assert deployment["build_id"] == build_id
    assert not deployment.get("preview")
    push_main = main_session.session["push_main"].outputs
    assert push_main is not None and match.group(1) != push_main["deployment-id"]
    # Nothing was built for the rollback: the only builds are the pull request's and the branch's.
    assert len(main_session.session.state["builds"]) == 2


def test_the_projects_self_test_workflow_runs_uses_dot_against_its_emulator(
    harness: ActHarness, tmp_path: Path
) -> None:
    """.github/workflows/self-test.yml as GitHub would run it on a pull request: `uses: ./`, preview, teardown."""
    project = copy_project(tmp_path / "project")
    run_git(project, "init", "-q", "-b", "feature")
    run_git(project, "add", "-A")
    run_git(project, "commit", "-q", "-m", "project")
    sha = run_git(project, "rev-parse", "HEAD")
    run = ActRun(
        "self_test",
        "pull_request",
        pr_payload(11, sha),
        workflow=".github/workflows/self-test.yml",
        extra=["--env", f"SGP_SELFTEST_PYTHON={sys.executable}"],
    )
    result = harness.run(project, [run])["self_test"]
    log = result.log()
    assert result.returncode == 0, log
    assert result.job_results == ["success"], log
    assert "result=success build=success deployment=healthy label=pr-11" in log
    assert "deleted=[" in log


def test_a_gitea_style_pull_request_gets_its_preview(main_session: MainSession) -> None:
    outputs = _succeeded(main_session.session["gitea_pr"])
    assert outputs["result"] == "success"
    assert outputs["deployment-status"] == "healthy"
    assert outputs["preview-label"] == f"pr-{GITEA_PR}"
