"""The sticky PR comment: marker, ordering, escaping, Gitea statuses, warnings; and a whole preview with a forge."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from sgp_action.ci import comment as comment_module
from sgp_action.ci.comment import Marker, PrComment, is_superseded, parse_marker, render_body, update_pr_comment
from sgp_action.ci.event import WorkflowEvent
from sgp_action.ci.report import Report
from sgp_action.ci.runner import Runner
from sgp_action.demo import pull_request_event
from tests.fake_forge import REPO, FakeForge, serve_forge
from tests.markdown_checks import HOSTILE, assert_inert
from tests.run_helpers import ForgeWorkspace
from tests.support import EmulatorHandle

SHA_OLD, SHA_NEW = "a" * 40, "b" * 40
T0 = datetime(2026, 11, 29, 4, 0, tzinfo=timezone.utc)


def _report(**fields: Any) -> Report:
    base: dict[str, Any] = dict(
        command="preview",
        result="success",
        deployment_id="dep-1",
        deployment_status="healthy",
        preview_label="pr-7",
        expires_at="2026-11-29T12:00:00Z",
        build_id="bld-1",
        image_name="sample-agent",
        image_tag="abcdef0",
    )
    base.update(fields)
    return Report(**base)


def _ctx(
    forge_url: str, *, sha: str = SHA_NEW, started: datetime = T0, forge_kind: str = "github", **report: Any
) -> PrComment:
    event = SimpleNamespace(
        api_url=forge_url,
        repository=REPO,
        pr_number=7,
        head_sha=sha,
        is_pull_request=True,
        forge=forge_kind,
        run_url="https://forge.example/demo/sample-agent/actions/runs/12",
    )
    return PrComment(
        event=cast(WorkflowEvent, event),
        runner=Runner(environ={}, stream=io.StringIO()),
        report=_report(**report),
        command="preview",
        agent="",
        started_at=started,
        forge_token="tok-SECRET",
    )


def _log(ctx: PrComment) -> str:
    return cast(io.StringIO, ctx.runner.stream).getvalue()


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with serve_forge() as state:
        yield state


def _bodies(forge: FakeForge) -> list[str]:
    return [c["body"] for c in forge.comments.values() if c["issue"] == 7]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!-- sgp-agentex-action:a sha=abc at=2026-11-29T04:00:00Z -->", Marker("a", "abc", T0)),
        ("x\n<!-- sgp-agentex-action:my-agent -->\ny", Marker("my-agent")),
        ("<!-- sgp-agentex-action:a sha=abc at=garbage -->", Marker("a", "abc", None)),
        ("no marker here", None),
    ],
)
def test_parse_marker(text: str, expected: Marker | None) -> None:
    assert parse_marker(text) == expected


def test_marker_round_trips() -> None:
    marker = Marker("a", SHA_NEW, T0)
    assert parse_marker(marker.render()) == marker


@pytest.mark.parametrize(
    ("existing", "ours", "superseded"),
    [
        (Marker("a", SHA_NEW, T0 + timedelta(minutes=5)), Marker("a", SHA_OLD, T0), True),
        (Marker("a", SHA_OLD, T0), Marker("a", SHA_NEW, T0 + timedelta(minutes=5)), False),
        (Marker("a", SHA_NEW, T0 + timedelta(minutes=5)), Marker("a", SHA_NEW, T0), False),  # same commit: update
        (Marker("a"), Marker("a", SHA_OLD, T0), False),  # no timestamp: overwrite
    ],
)
def test_is_superseded(existing: Marker, ours: Marker, superseded: bool) -> None:
    assert is_superseded(existing, ours) is superseded


def test_body_escapes_server_text() -> None:
    report = _report(result="failure", message="<img src=x onerror=alert(1)> | `boom`\nsecond line")
    body = render_body(Marker("a", SHA_NEW, T0), report, "preview", "https://x/run")
    assert "| Status | ❌ failure: `` <img src=x onerror=alert(1)> \\| `boom` `` |" in body
    assert "second line" not in body
    assert body.startswith("<!-- sgp-agentex-action:a ")


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("result", ["success", "failure"])
def test_every_server_value_in_the_comment_is_inert(text: str, result: str) -> None:
    fields = ("deployment_id", "deployment_status", "preview_label", "expires_at", "build_id", "image_name")
    report = _report(result=result, message=f"{text}\nmore", **{name: text for name in fields})
    body = render_body(Marker("a", SHA_NEW, T0), report, "preview", "https://x/run?q=<b>&r=(1)](bad) [x]")
    *table, link = body.splitlines()[1:]
    assert_inert("\n".join(table))
    assert link == "[Workflow run](https://x/run?q=%3Cb%3E&r=%281%29%5D%28bad%29%20%5Bx%5D)"


def test_two_runs_create_one_comment_then_edit_it(forge: FakeForge) -> None:
    assert update_pr_comment(_ctx(forge.url, sha=SHA_OLD))
    assert update_pr_comment(_ctx(forge.url, sha=SHA_NEW, started=T0 + timedelta(minutes=1), deployment_id="dep-2"))
    (body,) = _bodies(forge)
    assert "dep-2" in body and f"sha={SHA_NEW}" in body
    assert [m for m, _ in forge.writes()] == ["POST", "PATCH"]


def test_marker_found_on_the_second_page(forge: FakeForge) -> None:
    for n in range(60):
        forge.add(7, f"chatter {n}")
    forge.add(7, Marker("sample-agent", SHA_OLD, T0).render() + "\nold")
    assert update_pr_comment(_ctx(forge.url))
    assert len(_bodies(forge)) == 61 and forge.writes() == [
        ("PATCH", "/api/v1/repos/demo/sample-agent/issues/comments/61")
    ]


def test_an_older_run_does_not_overwrite(forge: FakeForge) -> None:
    update_pr_comment(_ctx(forge.url, sha=SHA_NEW, started=T0 + timedelta(minutes=5)))
    assert not update_pr_comment(_ctx(forge.url, sha=SHA_OLD, started=T0, deployment_id="dep-old"))
    (body,) = _bodies(forge)
    assert "dep-old" not in body and f"sha={SHA_NEW}" in body


def test_failure_updates_the_comment(forge: FakeForge) -> None:
    update_pr_comment(_ctx(forge.url))
    update_pr_comment(_ctx(forge.url, result="failure", message="build failed: step 3\ntrace"))
    (body,) = _bodies(forge)
    assert "❌ failure: `build failed: step 3`" in body and "trace" not in body


def test_teardown_says_deleted(forge: FakeForge) -> None:
    ctx = replace(_ctx(forge.url), command="teardown")
    update_pr_comment(ctx)
    (body,) = _bodies(forge)
    assert "preview deleted" in body


def test_forge_500_is_a_warning(forge: FakeForge) -> None:
    forge.fail = True
    ctx = _ctx(forge.url)
    assert update_pr_comment(ctx) is False
    assert "could not update the PR comment" in _log(ctx)
    assert "tok-SECRET" not in _log(ctx)


@pytest.mark.parametrize(("kind", "statuses"), [("gitea", 1), ("forgejo", 1), ("github", 0)])
def test_gitea_posts_a_commit_status(forge: FakeForge, kind: str, statuses: int) -> None:
    update_pr_comment(_ctx(forge.url, forge_kind=kind))
    assert len(forge.statuses) == statuses
    if statuses:
        (status,) = forge.statuses
        assert status["sha"] == SHA_NEW and status["state"] == "success"
        assert status["context"] == "sgp-agentex/sample-agent" and status["target_url"].startswith("https://")


def test_a_refused_commit_status_is_its_own_warning_and_the_comment_stands(forge: FakeForge) -> None:
    forge.statuses_forbidden = True
    ctx = _ctx(forge.url, forge_kind="gitea")
    assert update_pr_comment(ctx) is True
    assert len(_bodies(forge)) == 1 and forge.statuses == []
    log = _log(ctx)
    assert "Commit status" in log and "write access" in log and "HTTP 403" in log
    assert "could not update the PR comment" not in log


def test_dry_run_cancelled_and_other_commands_post_nothing(forge: FakeForge) -> None:
    dry = replace(_ctx(forge.url), enabled=False)
    cancelled = replace(_ctx(forge.url), cancelled=True)
    build = replace(_ctx(forge.url), command="build")
    assert not any(update_pr_comment(ctx) for ctx in (dry, cancelled, build))
    assert forge.requests == []


def test_token_never_in_the_comment(forge: FakeForge) -> None:
    update_pr_comment(_ctx(forge.url, result="failure", message="auth tok-SECRET rejected"))
    (body,) = _bodies(forge)
    assert "tok-SECRET" not in body and "auth *** rejected" in body
    assert all(r[3].find("tok-SECRET") == -1 for r in forge.requests)


def test_a_preview_run_posts_and_edits_the_comment(tmp_path: Path, emulator: EmulatorHandle, forge: FakeForge) -> None:
    workspace = ForgeWorkspace(tmp_path, emulator)
    workspace.api_url = forge.url
    first = workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token="ghs_tokenvalue")
    assert (first.exit_code, first.result) == (0, "success"), first.log
    second = workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token="ghs_tokenvalue")
    assert (second.exit_code, second.result) == (0, "success"), second.log
    bodies = [c["body"] for c in forge.comments.values()]
    assert len(bodies) == 1 and [m for m, p in forge.writes() if "/issues/" in p] == ["POST", "PATCH"]
    assert second.outputs["deployment-id"] in bodies[0] and "ghs_tokenvalue" not in bodies[0]
    assert emulator.api_key not in bodies[0]
    forge.fail = True
    third = workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token="ghs_tokenvalue")
    assert (third.exit_code, third.result) == (0, "success") and "could not update the PR comment" in third.log


def test_a_failed_preview_updates_the_comment(tmp_path: Path, emulator: EmulatorHandle, forge: FakeForge) -> None:
    workspace = ForgeWorkspace(tmp_path, emulator)
    workspace.api_url = forge.url
    good = workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token="ghs_tokenvalue")
    assert good.result == "success", good.log
    workspace.set_dockerfile("FROM python:3.12-slim\nRUN exit 3\n")
    bad = workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token="ghs_tokenvalue")
    assert bad.result == "failure", bad.log
    (body,) = [c["body"] for c in forge.comments.values()]
    assert "❌ failure" in body and f"sha={workspace.head_sha}" in body


@pytest.mark.parametrize("drip", ["headers", "body"])
def test_a_forge_that_drips_its_answer_costs_at_most_the_budget(
    forge: FakeForge, monkeypatch: pytest.MonkeyPatch, drip: str
) -> None:
    monkeypatch.setattr(comment_module, "FORGE_BUDGET", 0.5)
    monkeypatch.setattr(comment_module, "_GRACE", 0.2)
    forge.drip = drip
    ctx = _ctx(forge.url)
    start = time.monotonic()
    assert update_pr_comment(ctx) is False
    assert time.monotonic() - start < 1.5
    (warning,) = [line for line in _log(ctx).splitlines() if line.startswith("warning: PR comment")]
    assert "0.5 s" in warning and ("did not finish answering" in warning or "too slowly" in warning)
    assert forge.writes() == []


def test_overlapping_runs_leave_one_comment_with_the_newer_runs_body(forge: FakeForge) -> None:
    forge.list_barrier = threading.Barrier(2)  # both lookups find nothing, then both create
    older = _ctx(forge.url, sha=SHA_OLD, deployment_id="dep-old")
    newer = _ctx(forge.url, sha=SHA_NEW, started=T0 + timedelta(minutes=1), deployment_id="dep-new")
    threads = [threading.Thread(target=update_pr_comment, args=(ctx,)) for ctx in (older, newer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    posts = [m for m, p in forge.writes() if m == "POST"]
    assert len(posts) == 2  # the overlap really happened
    (body,) = _bodies(forge)
    assert "dep-new" in body and f"sha={SHA_NEW}" in body
    assert min(forge.comments) == 1  # the oldest comment is the one kept


def test_a_left_over_duplicate_is_removed_by_the_next_creating_run(forge: FakeForge) -> None:
    forge.list_barrier = threading.Barrier(2)
    runs = [_ctx(forge.url), _ctx(forge.url, deployment_id="dep-2")]  # two attempts of one commit
    threads = [threading.Thread(target=update_pr_comment, args=(ctx,)) for ctx in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(_bodies(forge)) == 1 and "duplicate PR comment" in _log(runs[0]) + _log(runs[1])


def test_a_preview_run_with_a_dripping_forge_ends_promptly_and_succeeds(
    tmp_path: Path, emulator: EmulatorHandle, forge: FakeForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comment_module, "FORGE_BUDGET", 1.0)
    forge.drip = "body"
    workspace = ForgeWorkspace(tmp_path, emulator)
    workspace.api_url = forge.url
    start = time.monotonic()
    run = workspace.run("pull_request", pull_request_event(workspace.head_sha), github_token="ghs_tokenvalue")
    elapsed = time.monotonic() - start
    assert (run.exit_code, run.result) == (0, "success"), run.log
    (warning,) = [line for line in run.log.splitlines() if line.startswith("::warning title=PR comment::")]
    assert "the forge sent its answer too slowly (not done in 1.0 s)" in warning and elapsed < 10, elapsed
