"""A run's GitHub deployment when the run is cancelled: real `sgp-action run` processes get a real SIGINT.

The runner sends SIGTERM 7.5 s after the SIGINT and kills 2.5 s later; the action's own cancel budget is shorter
(CANCEL_BUDGET_SECONDS). The deployment's final status comes after the remote cleanup, only in what is left of it.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sgp_action.demo import parse_output_file, pull_request_event
from sgp_action.run.cancel import CANCEL_BUDGET_SECONDS
from sgp_action.run.pipeline import CLEANUP_BUDGET_SECONDS
from tests.fake_forge import FakeForge, serve_forge
from tests.hostile import HostileServer
from tests.run_helpers import ForgeWorkspace, start_run, wait_for_line
from tests.support import EmulatorHandle

TOKEN = "ghs_tokenvalue"
WARNING = "::warning title=GitHub deployment::"
#: How long the test waits for the process at most: the runner's kill, 10 s after its SIGINT.
RUNNER_KILL_SECONDS = 10.0


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    with serve_forge() as state:
        yield state


def _cancel_preview(
    tmp_path: Path, emulator: EmulatorHandle, forge: FakeForge, *, sgp_url: str = ""
) -> tuple[str, float]:
    """A preview cancelled by SIGINT while its build runs: (the rest of its output, exit seconds after SIGINT)."""
    workspace = ForgeWorkspace(tmp_path, dataclasses.replace(emulator, url=sgp_url or emulator.url))
    workspace.api_url = forge.url
    env = workspace.environ("pull_request", pull_request_event(workspace.head_sha), github_token=TOKEN)
    proc = start_run(env)
    wait_for_line(proc, "::group::Build logs")
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    rest, _ = proc.communicate(timeout=RUNNER_KILL_SECONDS)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, rest
    assert parse_output_file((tmp_path / "github_output").read_text(encoding="utf-8"))["result"] == "cancelled"
    return rest, elapsed


def test_a_cancelled_preview_ends_its_deployment_in_error(
    tmp_path: Path, emulator_factory: Any, forge: FakeForge
) -> None:
    rest, elapsed = _cancel_preview(tmp_path, emulator_factory(build_seconds=60), forge)
    ((deployment_id, _),) = forge.deployments.items()
    assert forge.states(deployment_id) == ["in_progress", "error"], rest
    final = forge.deployment_statuses[-1]
    assert final["description"].startswith("cancelled: the job was cancelled (SIGINT)"), final
    assert "environment_url" not in final and len(final["description"]) <= 140
    assert WARNING not in rest and "did not stop within" not in rest, rest
    assert elapsed < CANCEL_BUDGET_SECONDS, rest
    assert forge.comments == {}  # the PR comment stays skipped on cancel
    print(f"cancelled preview: exit {elapsed:.2f} s after SIGINT")


def test_a_forge_silent_on_the_final_status_does_not_hold_the_cancelled_run(
    tmp_path: Path, emulator_factory: Any, forge: FakeForge
) -> None:
    forge.hang_state = "error"
    rest, elapsed = _cancel_preview(tmp_path, emulator_factory(build_seconds=60), forge)
    ((deployment_id, _),) = forge.deployments.items()
    assert forge.states(deployment_id) == ["in_progress", "error"], rest  # sent, never answered
    assert rest.count(WARNING) <= 1, rest
    # The worker itself ended, within its grace: the main thread never had to abandon it.
    assert "did not stop within" not in rest, rest
    assert elapsed < CANCEL_BUDGET_SECONDS, rest
    print(f"silent forge: exit {elapsed:.2f} s after SIGINT")


def test_a_remote_cleanup_that_spends_its_budget_leaves_no_time_for_the_final_status(
    tmp_path: Path, emulator_factory: Any, forge: FakeForge
) -> None:
    """The build's cancel never gets its answer: the cleanup spends its whole budget, counted from the SIGINT, and
    the status, which would push the worker past its grace, is not sent."""
    emulator = emulator_factory(build_seconds=60)
    with HostileServer({r"POST /v5/builds/[^/]+/cancel": "hang"}, upstream=emulator.url) as sgp:
        rest, elapsed = _cancel_preview(tmp_path, emulator, forge, sgp_url=sgp.url)
    ((deployment_id, _),) = forge.deployments.items()
    assert forge.states(deployment_id) == ["in_progress"], rest
    assert "still shows in_progress" in rest, rest
    assert WARNING not in rest and "did not stop within" not in rest, rest
    assert CLEANUP_BUDGET_SECONDS <= elapsed < CANCEL_BUDGET_SECONDS, rest
    print(f"cleanup spent its budget: exit {elapsed:.2f} s after SIGINT")
