"""Cleanup sweep: expired, closed-PR and replaced previews go; open, newest, terminal and production ones stay."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sgp_action.api.client import SGPClient
from sgp_action.ci.event import WorkflowEvent
from sgp_action.ci.forge import ForgeClient
from sgp_action.ci.report import Report
from sgp_action.ci.runner import Runner
from sgp_action.run.cancel import CancelToken, RemoteWork
from sgp_action.run.cleanup import CLOSED, EXPIRED, REPLACED, fetch_pr_state, plan, pr_number, sweep
from sgp_action.run.state import RunState
from tests.fakes import T0, Forge, deployment, serve_pr_states
from tests.hostile import cycling_pages, run_action, serve
from tests.support import EmulatorHandle, agent_yaml, create_deployment

REPO = "octo/mono"
TOKEN = "forge-token-123"


# --- the plan, table-driven -------------------------------------------------------------------------------------


def _d(id: str, status: str = "healthy", minutes: int = 0, **kw: Any) -> Any:
    return deployment(status, id=id, created_at=T0 + timedelta(minutes=minutes), **kw)


NOW = T0 + timedelta(hours=1)

PLAN_CASES = [
    ("open PR, single preview: kept", [_d("a", preview_label="pr-1")], {1: "open"}, []),
    ("closed PR: every active preview", [_d("a"), _d("b", minutes=1)], {7: "closed"}, [("a", CLOSED), ("b", CLOSED)]),
    ("unknown PR state: kept", [_d("a", preview_label="pr-3")], {3: None}, []),
    ("no PR lookup done: kept", [_d("a", preview_label="pr-3")], {}, []),
    ("expired beats everything", [_d("a", expires_at=NOW - timedelta(seconds=1))], {7: "closed"}, [("a", EXPIRED)]),
    ("expiry exactly now counts", [_d("a", expires_at=NOW)], {}, [("a", EXPIRED)]),
    (
        "older same-label replaced",
        [_d("a"), _d("b", minutes=5), _d("c", minutes=2)],
        {},
        [("a", REPLACED), ("c", REPLACED)],
    ),
    (
        "terminal records never count",
        [_d("a"), _d("b", "DELETED", 5), _d("c", "superseded", 6), _d("d", "cancelled", 7)],
        {7: "open"},
        [],
    ),
    ("failed preview is still active", [_d("a", "failed"), _d("b", "pending", 1)], {}, [("a", REPLACED)]),
    ("production never touched", [_d("p", preview_label=None, expires_at=None)], {}, []),
    ("other labels are independent", [_d("a", preview_label="x"), _d("b", preview_label="y", minutes=1)], {}, []),
    (
        "other agents with the label are independent (monorepo PR)",
        [_d("a", agent_name="alpha"), _d("b", agent_name="beta", minutes=1), _d("c", agent_name="alpha", minutes=2)],
        {},
        [("a", REPLACED)],
    ),
    (
        "label without a PR number",
        [_d("a", preview_label="feature"), _d("b", preview_label="feature", minutes=1)],
        {},
        [("a", REPLACED)],
    ),
]


@pytest.mark.parametrize(
    ("deployments", "states", "expected"), [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES]
)
def test_plan(deployments: list[Any], states: dict[int, str | None], expected: list[tuple[str, str]]) -> None:
    assert [(d.deployment.id, d.reason) for d in plan(deployments, NOW, states)] == expected


@pytest.mark.parametrize(
    ("label", "number"), [("pr-12", 12), ("pr-0", 0), ("pr-", None), ("pr-1a", None), ("xpr-1", None), (None, None)]
)
def test_pr_number(label: str | None, number: int | None) -> None:
    assert pr_number(label) == number


# --- a tiny forge API -------------------------------------------------------------------------------------------


@pytest.fixture
def forge() -> Iterator[Forge]:
    with serve_pr_states(REPO) as served:
        yield served


def test_fetch_pr_state(forge: Forge) -> None:
    forge.states.update({1: "open", 2: "closed"})

    def client(url: str) -> ForgeClient:
        return ForgeClient(url, REPO, TOKEN, sleep=lambda seconds: None)

    assert fetch_pr_state(client(forge.url), 1) == "open"
    assert fetch_pr_state(client(forge.url + "/"), 2) == "closed"
    assert fetch_pr_state(client(forge.url), 99) is None  # 404: unknown, so its previews are kept
    assert fetch_pr_state(client("http://127.0.0.1:9"), 1) is None  # nothing listens: a warning, not a crash
    assert {auth for _, auth in forge.asked} == {f"token {TOKEN}"}


# --- sweeps against the emulator --------------------------------------------------------------------------------


def _client(emulator: EmulatorHandle) -> SGPClient:
    return SGPClient.for_url(emulator.url, emulator.api_key, emulator.account_id)


def _ctx(emulator: EmulatorHandle, forge: Forge | None, tmp_path: Path, *, dry_run: bool = False) -> RunState:
    summary = tmp_path / "summary.md"
    summary.write_text("", encoding="utf-8")
    settings = SimpleNamespace(github_token=TOKEN if forge else None, dry_run=dry_run, working_directory=tmp_path)
    event = WorkflowEvent(event_name="schedule", repository=REPO, api_url=forge.url if forge else "")
    return RunState(
        settings=settings,  # type: ignore[arg-type]
        event=event,
        runner=Runner(environ={"GITHUB_STEP_SUMMARY": str(summary)}, stream=io.StringIO()),
        command="cleanup",
        token=CancelToken(),
        report=Report(command="cleanup"),
        remote=RemoteWork(),
        client_factory=lambda _settings: _client(emulator),
    )


@dataclass
class Seeded:
    expected: dict[str, str]  # id -> reason, what the sweep must delete
    kept: set[str]  # active records that must stay
    now: datetime


def _previews(emulator: EmulatorHandle, count: int, label: str = "feature") -> list[str]:
    """`count` previews with the same label, oldest first."""
    with _client(emulator) as client:
        return [create_deployment(client, label) for _ in range(count)]


def _seed(emulator: EmulatorHandle) -> Seeded:
    """~30 records: open/closed PRs, replaced and expiring previews, terminal previews, production."""
    now = datetime.now(timezone.utc)
    soon = now + timedelta(hours=1)
    expected: dict[str, str] = {}
    kept: set[str] = set()
    with _client(emulator) as client:

        def create(label: str | None, expires: datetime | None = None) -> str:
            return create_deployment(client, label, expires)

        for _ in range(2):
            expected[create("pr-1")] = REPLACED  # open PR: the two older previews were replaced...
        kept.add(create("pr-1"))  # ...by the newest
        for _ in range(3):
            expected[create("pr-2")] = CLOSED  # closed PR: every one of them
        expected[create("pr-3", soon)] = EXPIRED  # open PR, but past its expiry at sweep time
        expected[create("pr-4", soon)] = EXPIRED
        kept.add(create("pr-4"))
        expected[create("pr-5")] = CLOSED  # closed PR
        # terminal: already deleted, must not be deleted again (docs/sgp-api.md#ended-deployments-cannot-be-deleted)
        for _ in range(3):
            client.delete_deployment(create("pr-6"))
        kept.add(create("pr-6"))  # unknown to the forge (404): kept
        expected[create("feature-x")] = REPLACED  # no PR number: only replacement applies
        kept.add(create("feature-x"))
        create(None)  # production, then superseded by the next one
        kept.add(create(None))
        for number in range(10, 22):  # open PRs with one preview each
            kept.add(create(f"pr-{number}"))
    return Seeded(expected, kept, now + timedelta(hours=2))


def _api_requests(emulator: EmulatorHandle, after: int) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in emulator.state()["requests"][after:]]


def _statuses(emulator: EmulatorHandle) -> dict[str, str]:
    return {d["id"]: str(d["status"]).lower() for d in emulator.state()["deployments"]}


def test_sweep_deletes_exactly_the_doomed_previews(emulator: EmulatorHandle, forge: Forge, tmp_path: Path) -> None:
    seeded = _seed(emulator)
    forge.states.update({1: "open", 2: "closed", 3: "open", 4: "open", 5: "closed"})
    forge.states.update({n: "open" for n in range(10, 22)})
    before = len(emulator.state()["requests"])
    ctx = _ctx(emulator, forge, tmp_path)

    deleted = sweep(ctx, now=seeded.now)

    assert sorted(deleted) == sorted(seeded.expected)
    assert sorted(json.loads(ctx.report.outputs()["deleted"])) == sorted(seeded.expected)
    statuses = _statuses(emulator)
    assert all(statuses[i] == "deleted" for i in seeded.expected)
    assert all(statuses[i] != "deleted" for i in seeded.kept)
    # Only the list pages and the deletes reached the API.
    sent = _api_requests(emulator, before)
    assert {m for m, p in sent if p == "/v5/agentex/deployments"} == {"GET"}
    assert sorted(p for m, p in sent if m == "DELETE") == sorted(
        f"/v5/agentex/deployments/{i}" for i in seeded.expected
    )
    assert len(sent) == len(seeded.expected) + sum(1 for m, p in sent if m == "GET")
    # One forge lookup per distinct PR still undecided; none for a PR whose previews all expired.
    paths = [p for p, _ in forge.asked]
    assert len(paths) == len(set(paths))
    assert f"/api/v1/repos/{REPO}/pulls/3" not in paths  # its only preview had already expired
    assert f"/api/v1/repos/{REPO}/pulls/2" in paths
    # The summary says why.
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    for deployment_id, reason in seeded.expected.items():
        line = next(line for line in summary.splitlines() if deployment_id in line)
        assert {"replaced": "replaced by", "closed": "is closed", "expired": "expired at"}[reason] in line


def test_dry_run_deletes_nothing_and_prints_the_plan(emulator: EmulatorHandle, forge: Forge, tmp_path: Path) -> None:
    seeded = _seed(emulator)
    forge.states.update({2: "closed", 5: "closed"})
    gone_before = {i for i, status in _statuses(emulator).items() if status == "deleted"}
    before = len(emulator.state()["requests"])
    ctx = _ctx(emulator, forge, tmp_path, dry_run=True)

    assert sweep(ctx, now=seeded.now) == []
    assert ctx.report.outputs()["deleted"] == "[]"
    assert {i for i, status in _statuses(emulator).items() if status == "deleted"} == gone_before
    assert {m for m, _ in _api_requests(emulator, before)} == {"GET"}
    log = ctx.runner.stream.getvalue()  # type: ignore[attr-defined]
    for deployment_id in seeded.expected:
        assert f"Would delete {deployment_id}" in log
    assert "dry run: nothing deleted" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_without_a_token_closed_prs_are_not_looked_up(emulator: EmulatorHandle, forge: Forge, tmp_path: Path) -> None:
    seeded = _seed(emulator)
    forge.states.update({2: "closed", 5: "closed"})
    deleted = sweep(_ctx(emulator, None, tmp_path), now=seeded.now)
    closed = [i for i, why in seeded.expected.items() if why == CLOSED]  # pr-2 x3 (oldest first), then pr-5
    # Without PR states pr-2's two older previews still count as replaced; its newest and pr-5's stay.
    expected = [i for i, why in seeded.expected.items() if why != CLOSED] + closed[:2]
    assert sorted(deleted) == sorted(expected)
    assert forge.asked == []


def test_already_gone_counts_as_done(emulator: EmulatorHandle, tmp_path: Path) -> None:
    ids = _previews(emulator, 3)
    ctx = _ctx(emulator, None, tmp_path)
    # A parallel job deletes the oldest between our list and our delete: simulate with a client that lists stale data.
    listed = list(ctx.client.list_deployments(sort_by="created_at", sort_order="asc"))
    ctx.client.delete_deployment(ids[0])
    ctx.client.list_deployments = lambda **_: iter(listed)  # type: ignore[method-assign]
    assert sweep(ctx) == [ids[1]]
    assert "was already gone" in ctx.runner.stream.getvalue()  # type: ignore[attr-defined]


def test_rate_limited_sweep_still_completes(emulator: EmulatorHandle, tmp_path: Path) -> None:
    ids = _previews(emulator, 7)
    emulator.set_faults(["rate-limit=4"])
    before = len(emulator.state()["requests"])
    assert sorted(sweep(_ctx(emulator, None, tmp_path))) == sorted(ids[:-1])
    emulator.set_faults([])
    statuses = [r["status"] for r in emulator.state()["requests"][before:]]
    assert 429 in statuses
    assert _statuses(emulator)[ids[-1]] != "deleted"


# --- a whole scheduled run ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True])
def test_scheduled_run_deletes_closed_pr_previews_and_keeps_open_ones(
    emulator: EmulatorHandle, forge: Forge, tmp_path: Path, dry_run: bool
) -> None:
    with _client(emulator) as client:
        closed = [create_deployment(client, "pr-8"), create_deployment(client, "pr-8")]
        open_ = create_deployment(client, "pr-9")
    forge.states.update({8: "closed", 9: "open"})
    environ = {"GITHUB_ACTIONS": "false", "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": forge.url}
    run = run_action(
        emulator.url,
        tmp_path,
        environ={**environ, "INPUT_API_KEY": emulator.api_key, "INPUT_ACCOUNT_ID": emulator.account_id},
        github_token=TOKEN,
        dry_run="true" if dry_run else "false",
    )
    outputs = run.outputs
    assert (run.exit_code, outputs["result"]) == (0, "success")
    statuses = _statuses(emulator)
    assert statuses[open_] != "deleted"
    if dry_run:
        assert json.loads(outputs["deleted"]) == []
        assert all(statuses[i] != "deleted" for i in closed)
    else:
        assert sorted(json.loads(outputs["deleted"])) == sorted(closed)
        assert all(statuses[i] == "deleted" for i in closed)
    assert "PR #8 is closed" in run.summary
    assert TOKEN not in run.log


def test_a_closed_pr_condemns_only_this_repositorys_agents_previews() -> None:
    """pr-7 of another repository sharing the SGP account is not judged by this repository's PR #7."""
    deployments = [_d("ours", agent_name="alpha"), _d("theirs", agent_name="zeta", minutes=1), _d("unknown", minutes=2)]
    doomed = plan(deployments, NOW, {7: "closed"}, own_agents=frozenset({"alpha"}))
    assert [(d.deployment.id, d.reason) for d in doomed] == [("ours", CLOSED), ("unknown", CLOSED)]
    everyone = plan(deployments, NOW, {7: "closed"})
    assert [d.deployment.id for d in everyone] == ["ours", "theirs", "unknown"]


@pytest.mark.timeout(20)
def test_cleanup_against_cycling_cursors_exits_3_after_a_few_requests(tmp_path: Path) -> None:
    """Cursors A -> B -> A with has_more always true used to make the sweep page forever, memory rising."""
    with serve(cycling_pages) as server:
        run = run_action(server.url, tmp_path, command="cleanup")
    assert run.exit_code == 3
    assert "GET /v5/agentex/deployments: the server's paging looped" in run.log
    assert len(server.requests) <= 5
    assert not [r for r in server.requests if r.startswith("DELETE")]


def test_counts_are_in_words_and_no_pr_matching_is_announced_without_a_token(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "manifest.yaml").write_text(agent_yaml()[0], encoding="utf-8")
    client = _client(emulator)
    create_deployment(client, "pr-1")
    create_deployment(client, "pr-1")  # replaces the first
    ctx = _ctx(emulator, None, tmp_path)
    sweep(ctx)
    stream = ctx.runner.stream
    assert isinstance(stream, io.StringIO)
    log = stream.getvalue()
    assert "Cleanup: 2 deployments listed, 1 preview to delete" in log
    assert "closed PRs are matched" not in log
