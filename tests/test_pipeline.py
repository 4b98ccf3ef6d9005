"""Full runs of `sgp-action run` against the real emulator: every command, faults, dialects, timeouts, skips.

Each run is the real pipeline in this process, with settings and event read from a runner-like environment and the
outputs and summary written to real files (the real-process runs are in tests/test_cancel.py and the demo's tests).
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sgp_action.demo import AGENT_FOLDER, pull_request_event
from tests.run_helpers import Workspace, build_log_lines, server_build_log
from tests.support import EmulatorHandle


@pytest.fixture
def workspace(tmp_path: Path, emulator: EmulatorHandle) -> Workspace:
    return Workspace(tmp_path, emulator)


def test_full_preview(workspace: Workspace, emulator: EmulatorHandle) -> None:
    started = datetime.now(timezone.utc)
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    out = run.outputs
    assert out["build-status"] == "success" and out["reused-build"] == "false"
    assert out["deployment-status"] == "healthy" and out["preview-label"] == "pr-42"
    assert out["image-name"] == "sample-agent" and out["image-tag"] == workspace.head_sha[:7]
    assert out["helm-release-name"].startswith("sample-agent-pr-42-") and out["namespace"]
    assert json.loads(out["deleted"]) == []
    assert len(out["working-tree-hash"]) == 64
    expires = datetime.fromisoformat(out["expires-at"].replace("Z", "+00:00"))
    assert started + timedelta(hours=8) - timedelta(minutes=1) < expires < started + timedelta(hours=8, minutes=5)
    state = emulator.state()
    (build,) = state["builds"]
    assert build["id"] == out["build-id"] and build["source_commit"] == workspace.head_sha
    assert build["working_tree_hash"] == out["working-tree-hash"]
    (deployment,) = state["deployments"]
    assert deployment["id"] == out["deployment-id"] and deployment["preview_label"] == "pr-42"
    # Every build log line printed once, in order, inside its group.
    assert build_log_lines(run.log) == server_build_log(emulator, build["id"])
    # The key is registered as a mask before anything else, and appears nowhere else.
    lines = run.log.splitlines()
    assert lines[0] == f"::add-mask::{emulator.api_key}"
    assert all(emulator.api_key not in line for line in lines[1:]) and emulator.api_key not in run.summary
    assert "| Deployment | `" + out["deployment-id"] + "` (`healthy`) |" in run.summary


def test_second_preview_reuses_the_build_and_replaces_the_previous_preview(
    workspace: Workspace, emulator: EmulatorHandle
) -> None:
    first = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    second = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert second.result == "success", second.log
    assert second.outputs["reused-build"] == "true" and second.outputs["build-id"] == first.outputs["build-id"]
    assert json.loads(second.outputs["deleted"]) == [first.outputs["deployment-id"]]
    assert len(emulator.state()["builds"]) == 1


def test_production_deploy_on_push_to_main(workspace: Workspace, emulator: EmulatorHandle) -> None:
    run = workspace.run("push", workspace.push("main"))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert run.outputs["deployment-status"] == "healthy"
    assert "preview-label" not in run.outputs and "expires-at" not in run.outputs
    (deployment,) = emulator.state()["deployments"]
    assert deployment["preview_label"] is None and deployment["expires_at"] is None


def test_build_only_on_another_branch(workspace: Workspace, emulator: EmulatorHandle) -> None:
    run = workspace.run("push", workspace.push("feature-x"))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert run.outputs["build-status"] == "success" and "deployment-id" not in run.outputs
    state = emulator.state()
    assert len(state["builds"]) == 1 and state["deployments"] == []


def test_teardown_on_closed(workspace: Workspace, emulator: EmulatorHandle) -> None:
    preview = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    closed = pull_request_event(workspace.head_sha)
    closed["action"] = "closed"
    run = workspace.run("pull_request", closed)
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert json.loads(run.outputs["deleted"]) == [preview.outputs["deployment-id"]]
    (deployment,) = emulator.state()["deployments"]
    assert deployment["status"] == "DELETED"


def test_failing_dockerfile_fails_with_the_log_tail(workspace: Workspace, emulator: EmulatorHandle) -> None:
    workspace.set_dockerfile("FROM python:3.12-slim\nRUN echo about to fail\nRUN exit 3\n")
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (1, "failure")
    (error,) = [line for line in run.log.splitlines() if line.startswith("::error")]
    assert "returned a non-zero code: 3" in error and "about to fail" in error
    assert run.outputs["build-status"] == "failed" and emulator.state()["deployments"] == []


@pytest.mark.parametrize("emulator", [{"faults": ["deploy-fail"]}], indirect=True)
def test_crashing_deployment_fails_with_events(workspace: Workspace, emulator: EmulatorHandle) -> None:
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (1, "failure"), run.log
    assert run.outputs["deployment-status"] == "failed"
    (error,) = [line for line in run.log.splitlines() if line.startswith("::error")]
    assert "CrashLoopBackOff" in error or "BackOff" in error


def test_dropped_log_stream_still_succeeds_and_prints_each_line_once(
    workspace: Workspace, emulator: EmulatorHandle
) -> None:
    emulator.set_faults(["sse-drop-after=2"])
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    printed = build_log_lines(run.log)
    full = server_build_log(emulator, run.outputs["build-id"])
    assert len(full) > 10 and printed == full  # every line, in order, none lost and none twice


@pytest.mark.parametrize("emulator", ["legacy"], indirect=True)
def test_legacy_dialect_is_healthy(workspace: Workspace) -> None:
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert run.outputs["deployment-status"] == "healthy" and run.outputs["build-id"]


@pytest.mark.parametrize("emulator", [{"build_seconds": 60}], indirect=True)
def test_build_timeout_cancels_the_build(workspace: Workspace, emulator: EmulatorHandle) -> None:
    run = workspace.run("push", workspace.push("feature-x"), build_timeout="1s")
    assert (run.exit_code, run.result) == (4, "failure")
    assert "build-timeout" in run.log
    requests_seen = emulator.state()["requests"]
    assert any(r["method"] == "POST" and r["path"].endswith("/cancel") for r in requests_seen)
    (build,) = emulator.state()["builds"]
    assert build["build_status"] in {"cancelling", "cancelled"}


def test_dry_run_creates_nothing(workspace: Workspace, emulator: EmulatorHandle) -> None:
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha), dry_run="true")
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert "Dry run" in run.log and "preview pr-42" in run.log
    assert emulator.state()["requests"] == []


def test_fork_pull_request_without_the_key_is_skipped(workspace: Workspace, emulator: EmulatorHandle) -> None:
    payload = pull_request_event(workspace.head_sha)
    payload["pull_request"]["head"]["repo"] = {"full_name": "someone/sample-agent", "fork": True}  # type: ignore[index]
    run = workspace.run("pull_request", payload, api_key="")
    assert (run.exit_code, run.result) == (0, "skipped")
    assert "::notice" in run.log and "fork" in run.log
    assert emulator.state()["requests"] == []


@pytest.mark.parametrize(("event_name", "warned"), [("pull_request_target", True), ("pull_request", False)])
def test_fork_code_run_with_the_key_under_pull_request_target_is_warned_about(
    workspace: Workspace, emulator: EmulatorHandle, event_name: str, warned: bool
) -> None:
    payload = pull_request_event(workspace.head_sha)
    payload["pull_request"]["head"]["repo"] = {"full_name": "someone/sample-agent", "fork": True}  # type: ignore[index]
    run = workspace.run(event_name, payload, dry_run="true")
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert ("Fork code with secrets" in run.log) is warned, run.log


def test_bad_input_sends_nothing(workspace: Workspace, emulator: EmulatorHandle) -> None:
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha), manifest="missing/manifest.yaml")
    assert (run.exit_code, run.result) == (2, "failure")
    assert emulator.state()["requests"] == []


def test_rollback_deploys_an_existing_build(workspace: Workspace, emulator: EmulatorHandle) -> None:
    built = workspace.run("push", workspace.push("feature-x"))
    dispatch = {"ref": "refs/heads/main", "repository": {"full_name": "demo/sample-agent", "default_branch": "main"}}
    run = workspace.run("workflow_dispatch", dispatch, build_id=built.outputs["build-id"])
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert run.outputs["build-id"] == built.outputs["build-id"] and run.outputs["reused-build"] == "true"
    assert run.outputs["deployment-status"] == "healthy"
    assert len(emulator.state()["builds"]) == 1


def test_an_unknown_build_id_is_an_api_error(workspace: Workspace, emulator: EmulatorHandle) -> None:
    dispatch = {"ref": "refs/heads/main", "repository": {"full_name": "demo/sample-agent", "default_branch": "main"}}
    run = workspace.run("workflow_dispatch", dispatch, build_id="build_does_not_exist")
    assert (run.exit_code, run.result) == (3, "failure")
    assert emulator.state()["deployments"] == []


@pytest.mark.parametrize("emulator", [{"api_key": "the-real-key"}], indirect=True)
def test_a_wrong_key_is_an_api_error_and_stays_masked(workspace: Workspace, emulator: EmulatorHandle) -> None:
    emulator.api_key = "a-wrong-key-123"
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (3, "failure")
    lines = run.log.splitlines()
    assert lines[0] == "::add-mask::a-wrong-key-123"
    assert all("a-wrong-key-123" not in line for line in lines[1:])


@pytest.mark.parametrize("fault", ["http-500=0.25", "rate-limit=4", "lose-create-response", "slow=0.2"])
def test_a_full_preview_survives_a_fault_with_one_build_and_every_line_once(
    workspace: Workspace, emulator: EmulatorHandle, fault: str
) -> None:
    emulator.set_faults([fault])
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    state = emulator.state()
    assert len(state["builds"]) == 1 and len(state["deployments"]) == 1
    assert build_log_lines(run.log) == server_build_log(emulator, run.outputs["build-id"])


@pytest.mark.parametrize("emulator", [{"build_seconds": 0.2}], indirect=True)
def test_a_short_build_that_ends_while_the_log_stream_backs_off_after_429s_prints_every_line_once(
    workspace: Workspace, emulator: EmulatorHandle
) -> None:
    """The build ends while the log stream waits out `Retry-After`: the follower must not take it for caught up."""
    emulator.set_faults(["rate-limit=4"])
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert (run.exit_code, run.result) == (0, "success"), run.log
    assert build_log_lines(run.log) == server_build_log(emulator, run.outputs["build-id"]), run.log
    assert "may be incomplete" not in run.log


def test_previews_of_two_agents_with_one_label_live_side_by_side(
    workspace: Workspace, emulator: EmulatorHandle
) -> None:
    """A monorepo PR: each agent's preview replaces and tears down only its own previews with the PR's label."""
    second = workspace.repo / "agent-two"
    shutil.copytree(workspace.repo / AGENT_FOLDER, second)
    manifest = (second / "manifest.yaml").read_text(encoding="utf-8")
    (second / "manifest.yaml").write_text(manifest.replace(AGENT_FOLDER, "agent-two"), encoding="utf-8")
    event = pull_request_event(workspace.head_sha)
    one = workspace.run("pull_request", event)
    two = workspace.run("pull_request", event, manifest="agent-two/manifest.yaml")
    assert (one.result, two.result) == ("success", "success"), two.log
    assert one.outputs["preview-label"] == two.outputs["preview-label"]
    assert json.loads(two.outputs["deleted"]) == []
    closed = dict(event, action="closed")
    down = workspace.run("pull_request", closed, manifest="agent-two/manifest.yaml")
    assert json.loads(down.outputs["deleted"]) == [two.outputs["deployment-id"]], down.log
    statuses = {d["id"]: d["status"] for d in emulator.state()["deployments"]}
    assert statuses == {one.outputs["deployment-id"]: "HEALTHY", two.outputs["deployment-id"]: "DELETED"}


def test_without_a_commit_in_the_event_the_image_tag_is_the_checked_out_commit(
    workspace: Workspace, emulator: EmulatorHandle
) -> None:
    """Outside Actions (another CI, a laptop) the event has no SHA: the tag still names the commit, not `latest`."""
    payload = workspace.push("feature-x")
    del payload["after"]
    run = workspace.run("push", payload)
    assert run.result == "success", run.log
    assert run.outputs["image-tag"] == workspace.head_sha[:7]
    (build,) = emulator.state()["builds"]
    assert build["image_tag"] == workspace.head_sha[:7]


# --- the job summary explains the run (issue 15) ----------------------------------------------------------------


def _fenced_after(summary: str, heading: str) -> str:
    """The text of the fenced block that follows `**heading**` in the summary."""
    after = summary.split(f"**{heading}**\n\n", 1)[1]
    fence, _, rest = after.partition("text\n")
    return rest.split(f"\n{fence}\n", 1)[0]


@pytest.mark.parametrize("emulator", [{"faults": ["deploy-fail"]}], indirect=True)
def test_a_crashed_deployments_summary_shows_the_events_and_the_log_tail(workspace: Workspace) -> None:
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert run.result == "failure", run.log
    assert "CrashLoopBackOff" in _fenced_after(run.summary, "Last Kubernetes events")
    assert "ERROR" in _fenced_after(run.summary, "Last deploy log lines")
    (error,) = [line for line in run.log.splitlines() if line.startswith("::error")]
    assert error.startswith("::error title=Deployment failed::")


def test_a_failed_builds_summary_shows_the_last_build_log_lines(workspace: Workspace) -> None:
    workspace.set_dockerfile("FROM python:3.12-slim\nRUN echo about to fail\nRUN exit 3\n")
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert run.result == "failure", run.log
    assert "about to fail" in _fenced_after(run.summary, "Last build log lines")
    assert [line for line in run.log.splitlines() if line.startswith("::error title=Build failed::")]


def test_a_dry_runs_summary_says_nothing_was_created(workspace: Workspace) -> None:
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha), dry_run="true")
    heading, _, body = run.summary.partition("\n")
    assert heading == "### 🧪 SGP preview: dry run, nothing created" and "success" not in heading
    assert "nothing was sent to SGP" in body


def test_the_log_and_the_summary_print_the_same_times(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sgp_action.ci.report.TIMELINE_SECONDS", 0.0)
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha))
    assert run.result == "success", run.log
    times = dict(re.findall(r"^\| Time: (\w+) \| (\S+) \|$", run.summary, flags=re.MULTILINE))
    assert list(times) == ["packaging", "lookup", "upload", "build", "deploy", "health", "total"]
    build_line = re.search(r"^Build \S+ success after (\S+):", run.log, flags=re.MULTILINE)
    health_line = re.search(r"^Deployment \S+ healthy after (\S+) ", run.log, flags=re.MULTILINE)
    assert build_line and health_line, run.log
    assert (build_line.group(1), health_line.group(1)) == (times["build"], times["health"])
    seconds = {
        name: float(text.removesuffix("ms")) / 1000 if text.endswith("ms") else float(text[:-1])
        for name, text in times.items()
    }
    assert sum(v for k, v in seconds.items() if k != "total") <= seconds["total"] + 0.05 * len(seconds)
    gantt = run.summary.split("```mermaid\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert gantt[:2] == ["gantt", "    title Phases of the run"]
    assert [line.split()[0] for line in gantt[4:]] == ["packaging", "lookup", "upload", "build", "deploy", "health"]
