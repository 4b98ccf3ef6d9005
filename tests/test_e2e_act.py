"""End to end in a real Actions runner: nektos/act (host mode) runs action.yml against the emulator.

Every session starts the emulator as a real subprocess and runs act inside one loopback-only network namespace when
that is possible here (see `act_harness`). Each consumer workflow ends with a step that writes
`toJSON(steps.sgp.outputs)` to a results file, so the action's outputs are checked as a later step saw them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from act_harness import (
    API_KEY,
    ActHarness,
    ActResult,
    ActRun,
    copy_project,
    make_consumer_repo,
    pr_payload,
    seed_tool_cache,
)


@pytest.fixture(scope="module")
def act_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(clean copy of the project, seeded tool cache), shared by the module's sessions."""
    base = tmp_path_factory.mktemp("act-env")
    yield copy_project(base / "sgp-action"), seed_tool_cache(base / "tool-cache")


@pytest.fixture
def harness(tmp_path: Path, act_env: tuple[Path, Path]) -> ActHarness:
    """A harness writing its sessions under this test's tmp_path."""
    work = tmp_path / "runs"
    work.mkdir()
    return ActHarness(work, *act_env)


def assert_secret_never_shown(result: ActResult, secret: str) -> None:
    """The secret is in no log line and no record, except the raw text of the `::add-mask::` command itself."""
    assert secret not in result.stderr
    for record in result.records:
        if record.get("command") == "add-mask":
            assert secret not in str(record.get("msg", ""))
            continue
        assert secret not in json.dumps(record, ensure_ascii=False), record


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
