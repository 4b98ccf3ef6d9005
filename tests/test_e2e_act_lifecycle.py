"""End to end in act (host mode): the scheduled cleanup example and the monorepo fan-out example, as written.

The cleanup session seeds the emulator (from inside the session's network namespace, see `seed_previews`), starts a
GitHub-style forge API (`tests/fakes.py forge`) that knows the pull requests' states, then runs
examples/github/cleanup.yml twice: a `workflow_dispatch` dry run, then the `schedule` run. The monorepo sessions run
examples/github/monorepo.yml on pushes that change no agent, one agent of three, then the other two: act expands
`matrix.include: ${{ fromJSON(needs.detect.outputs.matrix) }}` into one `deploy` job per changed agent (none for `[]`).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sgp_action.demo import run_git
from tests.act_harness import (
    ACCOUNT_ID,
    API_KEY,
    CONSUMER_REPO,
    ROOT,
    SAMPLE_AGENT,
    ActHarness,
    ActResult,
    ActRun,
    Session,
    assert_secret_never_shown,
    copy_project,
    make_consumer_repo,
    push_payload,
    seed_tool_cache,
)

# Each test drives the action in a real runner (act); tests/conftest.py keeps the module on one xdist worker.
pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples" / "github"
FORGE_TOKEN = "forge-e2e-token-7c2d91"
SECRETS = ["-s", f"SGP_API_KEY={API_KEY}", "-s", f"SGP_ACCOUNT_ID={ACCOUNT_ID}"]
REPOSITORY = push_payload("main", "0" * 40)["repository"]
#: The forge's answers: pr-4's state is never asked (its preview expired), pr-5 is unknown to it (404).
PR_STATES = {1: "open", 2: "closed", 3: "open", 4: "closed"}


@pytest.fixture(scope="module")
def act_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clean copy of the project, seeded tool cache), shared by the module's sessions."""
    project = copy_project(tmp_path_factory.mktemp("act-env") / "sgp-action")
    return project, seed_tool_cache(project.parent / "tool-cache", project)


def _step_outputs(result: ActResult, name: str) -> list[str]:
    """Every value the job's steps set for output `name` (act's `set-output` records carry the raw value)."""
    return [str(r.get("arg", "")) for r in result.records if r.get("command") == "set-output" and r.get("name") == name]


def _succeeded(result: ActResult) -> None:
    assert result.returncode == 0, result.log()
    assert result.job_results and set(result.job_results) == {"success"}, result.log()


# --- the scheduled cleanup --------------------------------------------------------------------------------------


def _seed_line(out: Path) -> str:
    """The session's setup line: `seed_previews("$URL", out)` in a fresh interpreter, inside the namespace."""
    code = "import sys; sys.path[:0] = sys.argv[1:2]; from tests.act_harness import seed_previews; "
    code += "from pathlib import Path; seed_previews(sys.argv[2], Path(sys.argv[3]))"
    command = shlex.join([sys.executable, "-c", code, str(ROOT)])
    return f'{command} "$URL" {shlex.quote(str(out))}'


@dataclass
class CleanupSession:
    """The cleanup example's two runs against one seeded emulator and forge."""

    session: Session
    ids: dict[str, str]

    @property
    def statuses(self) -> dict[str, str]:
        return {d["id"]: str(d["status"]).lower() for d in self.session.state["deployments"]}

    def deletes(self) -> list[tuple[str, int]]:
        """(deployment id, HTTP status) of every DELETE the emulator answered, in order."""
        prefix = "/v5/agentex/deployments/"
        return [
            (r["path"][len(prefix) :], int(r["status"]))
            for r in self.session.state["requests"]
            if r["method"] == "DELETE" and r["path"].startswith(prefix)
        ]


@pytest.fixture(scope="module")
def cleanup_session(tmp_path_factory: pytest.TempPathFactory, act_env: tuple[Path, Path]) -> CleanupSession:
    base = tmp_path_factory.mktemp("e2e-cleanup")
    example = (EXAMPLES / "cleanup.yml").read_text(encoding="utf-8")
    repo, _ = make_consumer_repo(base / "consumer", {"sgp-cleanup.yml": example})
    (base / "runs").mkdir()
    harness = ActHarness(base / "runs", *act_env)
    ids_file = base / "seeded.json"
    forge = [sys.executable, str(Path(__file__).parent / "fakes.py"), "forge", "--repo", CONSUMER_REPO]
    forge += [f"{n}={state}" for n, state in PR_STATES.items()]
    workflow = ".github/workflows/sgp-cleanup.yml"
    extra = [*SECRETS, "-s", f"GITHUB_TOKEN={FORGE_TOKEN}"]
    session = harness.run(
        repo,
        [
            ActRun(
                "dry_run",
                "workflow_dispatch",
                {"inputs": {"dry-run": "true"}, "repository": REPOSITORY},
                workflow=workflow,
                extra=[*extra, "--input", "dry-run=true"],
            ),
            ActRun("scheduled", "schedule", {"schedule": "17 3 * * *", "repository": REPOSITORY}, workflow, extra),
        ],
        forge=forge,
        setup=_seed_line(ids_file),
    )
    return CleanupSession(session, json.loads(ids_file.read_text(encoding="utf-8")))


def test_scheduled_cleanup_deletes_exactly_the_closed_prs_and_the_replaced_preview(
    cleanup_session: CleanupSession,
) -> None:
    ids = cleanup_session.ids
    _succeeded(cleanup_session.session["scheduled"])
    # One DELETE each, both accepted: the dry run before it deleted nothing (a second delete would be a 400).
    assert sorted(cleanup_session.deletes()) == sorted([(ids["closed"], 200), (ids["replaced"], 200)])
    statuses = cleanup_session.statuses
    assert statuses[ids["closed"]] == statuses[ids["replaced"]] == "deleted"
    for kept in ("open", "replacer", "unknown", "production", "foreign"):
        assert statuses[ids[kept]] == "healthy", kept


def test_scheduled_cleanup_sets_the_deleted_output_and_the_next_step_sees_it(cleanup_session: CleanupSession) -> None:
    ids = cleanup_session.ids
    result = cleanup_session.session["scheduled"]
    deleted = _step_outputs(result, "deleted")
    assert deleted and {json.dumps(sorted(json.loads(value))) for value in deleted} == {
        json.dumps(sorted([ids["closed"], ids["replaced"]]))
    }
    log = result.log()
    shown = log[log.index("deleted deployments: ") :]
    assert ids["closed"] in shown and ids["replaced"] in shown and ids["open"] not in shown


def test_scheduled_cleanup_says_why_in_the_log_and_the_job_summary(cleanup_session: CleanupSession) -> None:
    ids = cleanup_session.ids
    result = cleanup_session.session["scheduled"]
    log = result.log()
    assert f"Deleted {ids['closed']} (pr-2): PR #2 is closed" in log
    assert f"Deleted {ids['replaced']} (pr-3): replaced by {ids['replacer']}" in log
    assert "Cleanup: 8 deployments listed, 2 previews to delete" in log
    assert "closed PRs are matched against this repository's agents: sample-agent" in log
    assert "PR #5: the forge does not know it; keeping its previews" in log
    (summary,) = {str(r["content"]) for r in result.records if r.get("command") == "summary"}
    assert summary.startswith("#### Cleanup\n")
    assert f"| `{ids['closed']}` | `pr-2` | `PR #2 is closed` |" in summary
    assert f"| `{ids['replaced']}` | `pr-3` | `replaced by {ids['replacer']}` |" in summary
    assert ids["open"] not in summary and ids["production"] not in summary and ids["foreign"] not in summary


def test_an_expired_preview_is_gone_already_and_not_deleted_again(cleanup_session: CleanupSession) -> None:
    """The emulator expires a preview at its `expires_at` (docs/emulator.md#deployments), before any sweep can: skipped
    (docs/sgp-api.md#cleanup-has-no-server-side-filters)."""
    expired = cleanup_session.ids["expired"]
    assert cleanup_session.statuses[expired] == "deleted"
    assert expired not in {deployment_id for deployment_id, _ in cleanup_session.deletes()}
    (record,) = [d for d in cleanup_session.session.state["deployments"] if d["id"] == expired]
    assert any("Preview expired at" in event["message"] for event in record["deploy_events"])
    assert expired not in cleanup_session.session["scheduled"].log()


def test_the_dry_run_deletes_nothing_and_prints_the_plan(cleanup_session: CleanupSession) -> None:
    ids = cleanup_session.ids
    result = cleanup_session.session["dry_run"]
    _succeeded(result)
    assert set(_step_outputs(result, "deleted")) == {"[]"}
    log = result.log()
    assert f"Would delete {ids['closed']} (pr-2): PR #2 is closed" in log
    assert f"Would delete {ids['replaced']} (pr-3): replaced by {ids['replacer']}" in log
    assert "Deleted deploy_" not in log and "deleted deployments: []" in log
    (summary,) = {str(r["content"]) for r in result.records if r.get("command") == "summary"}
    assert "Cleanup plan (dry run: nothing deleted)" in summary
    assert ids["closed"] in summary and ids["replaced"] in summary


def test_pr_states_come_from_the_forge_at_github_api_url_with_the_token(cleanup_session: CleanupSession) -> None:
    asked = [json.loads(line) for line in cleanup_session.session.forge_log.splitlines()]
    # Each run asks once per undecided PR; never for pr-4, whose only preview had already expired.
    paths = sorted(path for path, _ in asked if "/pulls/" in path)  # the rest: GitHub deployments of deleted previews
    assert paths == sorted(f"/repos/{CONSUMER_REPO}/pulls/{n}" for n in (1, 2, 3, 5) for _ in range(2))
    assert {auth for _, auth in asked} == {f"token {FORGE_TOKEN}"}
    for result in cleanup_session.session.results.values():
        assert_secret_never_shown(result, FORGE_TOKEN)
        assert_secret_never_shown(result, API_KEY)


# --- the monorepo fan-out ---------------------------------------------------------------------------------------

AGENTS = ("alpha", "beta", "gamma")


def _add_agent(repo: Path, name: str) -> None:
    """agents/<name>/: the sample agent, its manifest rooted at the repository (`../..`) as the example describes."""
    folder = repo / "agents" / name
    shutil.copytree(SAMPLE_AGENT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = (folder / "manifest.yaml").read_text(encoding="utf-8").replace("root: ..", "root: ../..")
    manifest = manifest.replace("- sample-agent\n", f"- agents/{name}\n").replace("sample-agent/", f"agents/{name}/")
    manifest = manifest.replace(": sample-agent\n", f": {name}\n")  # agent.name, deployment.image.repository
    (folder / "manifest.yaml").write_text(manifest, encoding="utf-8")
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8").replace("sample-agent/", f"agents/{name}/")
    (folder / "Dockerfile").write_text(dockerfile, encoding="utf-8")


@dataclass
class MonorepoSession:
    """Two pushes to main, each run by the example in its own session (the checkout is the pushed commit)."""

    one: Session  # runs `readme` (a push changing no agent's build input), then `push` (only beta's code changed)
    two: Session  # `push`: alpha's Dockerfile and gamma's environments.yaml changed
    commits: list[str]  # the three agents, the README change, the beta change, the alpha+gamma change


@pytest.fixture(scope="module")
def monorepo_session(tmp_path_factory: pytest.TempPathFactory, act_env: tuple[Path, Path]) -> MonorepoSession:
    base = tmp_path_factory.mktemp("e2e-monorepo")
    example = (EXAMPLES / "monorepo.yml").read_text(encoding="utf-8")
    repo, _ = make_consumer_repo(base / "consumer", {"sgp-monorepo.yml": example})
    run_git(repo, "rm", "-q", "-r", "sample-agent")
    for name in AGENTS:
        _add_agent(repo, name)
    (repo / "README.md").write_text("three agents\n", encoding="utf-8")
    commits = [_commit(repo, "three agents")]
    _append(repo / "README.md", "and a README\n")
    commits.append(_commit(repo, "change the README"))
    _append(repo / "agents" / "beta" / "project" / "acp.py", "# beta changes\n")
    commits.append(_commit(repo, "change beta"))
    (base / "runs").mkdir()
    harness = ActHarness(base / "runs", *act_env)
    workflow = ".github/workflows/sgp-monorepo.yml"

    def push(name: str, before: str, after: str) -> ActRun:
        return ActRun(name, "push", push_payload("main", after, before), workflow, SECRETS)

    # The checkout is the working tree (pitfall 1): the README push builds nothing, so it may run on the beta commit.
    one = harness.run(repo, [push("readme", commits[0], commits[1]), push("push", commits[1], commits[2])])
    _append(repo / "agents" / "alpha" / "Dockerfile", 'RUN echo "alpha changes"\n')
    _append(repo / "agents" / "gamma" / "environments.yaml", "# gamma changes\n")
    commits.append(_commit(repo, "change alpha and gamma"))
    two = harness.run(repo, [push("push", commits[2], commits[3])])
    return MonorepoSession(one, two, commits)


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def _commit(repo: Path, message: str) -> str:
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD")


def _jobs(result: ActResult) -> list[tuple[str, str, str]]:
    """(job id, matrix agent or "", result) of every job that ran, sorted."""
    return sorted(
        (str(r["jobID"]), str((r.get("matrix") or {}).get("agent", "")), str(r["jobResult"]))
        for r in result.records
        if "jobResult" in r
    )


def _detected(result: ActResult) -> list[Any]:
    """The `detect` job's `matrix` output, as the action set it."""
    values = {str(r["arg"]) for r in result.records if r.get("jobID") == "detect" and r.get("name") == "matrix"}
    assert len(values) == 1, values
    return list(json.loads(values.pop()))


def _deployed(session: Session) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """{agent: (its build, its deployment)} from the emulator's state; every deployment has its build."""
    builds = {b["id"]: b for b in session.state["builds"]}
    return {builds[d["build_id"]]["agent_name"]: (builds[d["build_id"]], d) for d in session.state["deployments"]}


def test_detect_lists_only_the_agent_whose_build_inputs_changed(monorepo_session: MonorepoSession) -> None:
    result = monorepo_session.one["push"]
    _succeeded(result)
    assert _detected(result) == [{"manifest": "agents/beta/manifest.yaml", "agent": "beta"}]
    assert "Changed agents: beta" in result.log()


def test_the_matrix_deploy_job_runs_once_and_deploys_only_that_agent(monorepo_session: MonorepoSession) -> None:
    session = monorepo_session.one
    assert _jobs(session["push"]) == [("deploy", "beta", "success"), ("detect", "", "success")]
    (build,) = session.state["builds"]
    assert (build["agent_name"], build["build_status"]) == ("beta", "success")
    assert build["source_commit"] == monorepo_session.commits[2]
    (deployment,) = session.state["deployments"]
    assert deployment["build_id"] == build["id"]
    assert (deployment["status"], deployment["preview_label"], deployment["helm_release_name"]) == (
        "HEALTHY",
        None,
        "beta",
    )
    assert "name: beta\n" in deployment["manifest_file"]
    assert_secret_never_shown(session["push"], API_KEY)


def test_a_push_changing_no_build_input_skips_the_deploy_job(monorepo_session: MonorepoSession) -> None:
    result = monorepo_session.one["readme"]
    _succeeded(result)
    assert _detected(result) == []
    assert "Changed agents: none" in result.log()
    # The job-level `if:` skips the matrix job (act: silently, pitfall 6); the beta push made the only build.
    assert _jobs(result) == [("detect", "", "success")]
    assert [b["agent_name"] for b in monorepo_session.one.state["builds"]] == ["beta"]


def test_two_changed_agents_fan_out_to_two_matrix_jobs(monorepo_session: MonorepoSession) -> None:
    session = monorepo_session.two
    result = session["push"]
    _succeeded(result)
    assert _detected(result) == [
        {"manifest": "agents/alpha/manifest.yaml", "agent": "alpha"},
        {"manifest": "agents/gamma/manifest.yaml", "agent": "gamma"},
    ]
    assert _jobs(result) == [("deploy", "alpha", "success"), ("deploy", "gamma", "success"), ("detect", "", "success")]
    deployed = _deployed(session)
    assert sorted(deployed) == ["alpha", "gamma"]
    assert len(session.state["builds"]) == len(session.state["deployments"]) == 2
    for agent, (build, deployment) in deployed.items():
        assert build["source_commit"] == monorepo_session.commits[3], agent
        assert (deployment["status"], deployment["helm_release_name"]) == ("HEALTHY", agent)
